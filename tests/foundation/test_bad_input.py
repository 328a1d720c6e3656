"""Bad data gets one clear message naming file, line and field (or a counted skip)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

GOOD = [{"text": f"第{i}段：高血压患者应低盐饮食，规律服药，定期监测血压。"} for i in range(12)]


def jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def good_lines(n: int = 12) -> list[str]:
    return [json.dumps(r, ensure_ascii=False) for r in GOOD[:n]]


def fit(run_cli, tmp_path: Path, train: Path, *extra: str):
    return run_cli(
        "fit",
        "logger=csv",
        "trainer.max_steps=2",
        "data.batch_size=2",
        f"paths.output_dir={tmp_path / 'run'}",
        f"data.train_files=[{train}]",
        *extra,
    )


def assert_clean(r, code: int = 3) -> None:
    assert r.code == code, (r.code, r.err[-2000:])
    assert "Traceback" not in r.err + r.out


@pytest.mark.parametrize(
    "lines, expect",
    [
        (good_lines(3) + ['{"text": "未闭合'] + good_lines(3), "line 4: malformed JSON"),
        (good_lines(2) + ['{"body": "没有text字段"}'], "line 3: field 'text': missing"),
        (good_lines(5) + ['{"text": "   "}'], "line 6: field 'text': empty text"),
        (good_lines(1) + ['{"text": 42}'], "line 2: field 'text': expected text, got int"),
        (good_lines(1) + ['["一个列表"]'], "line 2: expected a JSON object"),
    ],
    ids=["malformed-json", "missing-field", "empty-text", "wrong-type", "not-an-object"],
)
def test_bad_record_named(run_cli, tmp_path, lines, expect):
    train = jsonl(tmp_path / "train.jsonl", lines)
    r = fit(run_cli, tmp_path, train)
    assert_clean(r)
    assert f"{train}, {expect}" in r.err
    assert not (tmp_path / "run" / "pretrain" / "hf").exists()


def test_non_utf8_bytes(run_cli, tmp_path):
    train = tmp_path / "gbk.txt"
    train.write_bytes("第一行正常\n".encode() + "第二行是GBK编码".encode("gbk") + b"\n")
    r = fit(run_cli, tmp_path, train)
    assert_clean(r)
    assert f"{train}, line 2:" in r.err and "not valid utf-8" in r.err
    assert "data.encoding" in r.err


def test_other_encoding_when_asked(run_cli, tmp_path):
    from chimed_lit.data.sources import read_file

    train = tmp_path / "gbk.txt"
    train.write_bytes("第一行\n第二行是GBK编码\n".encode("gbk"))
    texts = [r.data["text"] for r in read_file(str(train), encoding="gbk")]
    assert texts == ["第一行", "第二行是GBK编码"]


def test_missing_file(run_cli, tmp_path):
    r = fit(run_cli, tmp_path, tmp_path / "nope.jsonl")
    assert_clean(r)
    assert f"{tmp_path / 'nope.jsonl'}: file not found" in r.err


def test_empty_file(run_cli, tmp_path):
    train = tmp_path / "empty.jsonl"
    train.write_text("\n\n", encoding="utf-8")
    r = fit(run_cli, tmp_path, train)
    assert_clean(r)
    assert "file is empty" in r.err


def test_skip_mode_counts_and_reports(tmp_path, demo_tok, caplog):
    from chimed_lit.data.pretrain import PretrainDataModule

    lines = good_lines(6) + ['{"text": ""}', "{oops", '{"x": 1}'] + good_lines(6)[:3]
    train = jsonl(tmp_path / "train.jsonl", lines)
    dm = PretrainDataModule(
        tokenizer=demo_tok,
        train_files=[str(train)],
        val_fraction=0.2,
        on_bad_record="skip",
        max_length=64,
        cache_dir=str(tmp_path),
    )
    with caplog.at_level("WARNING"):
        dm.setup("fit")
    assert dm.stats["train_skipped"] == 3
    assert dm.stats["train_records"] + dm.stats["val_records"] == 9
    assert "skipped 3 bad train record(s)" in caplog.text
    assert "line 7: field 'text': empty text" in caplog.text
    assert "line 8: malformed JSON" in caplog.text


def test_csv_row_with_extra_fields(tmp_path):
    from chimed_lit.data.sources import read_file
    from chimed_lit.io.errors import DataError

    path = tmp_path / "d.csv"
    path.write_text("text,source\n好的,a\n坏的,b,c\n", encoding="utf-8")
    bad = [r.error for r in read_file(str(path)) if r.error is not None]
    assert len(bad) == 1 and isinstance(bad[0], DataError)
    assert str(bad[0]).endswith("line 3: row has 3 fields but the header has 2")


def test_parquet_and_csv_records_are_read(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from chimed_lit.data.sources import read_file

    pq.write_table(pa.table({"text": ["甲", "乙"], "n": [1, 2]}), tmp_path / "d.parquet")
    recs = list(read_file(str(tmp_path / "d.parquet")))
    assert [r.data["text"] for r in recs] == ["甲", "乙"] and recs[1].where == "row 1"
    (tmp_path / "d.csv").write_text("text,n\n丙,1\n", encoding="utf-8")
    assert [r.data for r in read_file(str(tmp_path / "d.csv"))] == [{"text": "丙", "n": "1"}]


def test_hub_id_unreachable_is_a_clear_error(run_cli, tmp_path):
    from chimed_lit.data.sources import is_hub_id

    assert is_hub_id("shibing624/medical") and not is_hub_id(str(tmp_path))
    r = run_cli(
        "fit",
        "logger=csv",
        "trainer.max_steps=2",
        f"paths.output_dir={tmp_path}",
        "data.train_files=[nobody-here/no-such-dataset]",
    )
    assert_clean(r)
    assert "nobody-here/no-such-dataset" in r.err and "cannot load Hub dataset" in r.err
