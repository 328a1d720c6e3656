"""`chimed-lit eval task=bias`: the paper's Figure 2 as one command, run for real on two tiny
random models with made-up item texts (the questionnaires are not shipped), W&B offline."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import pytest

from tests.evalcli.conftest import save_tiny_lm

PNG = b"\x89PNG\r\n\x1a\n"


def _items(folder: Path, name: str, n: int) -> Path:
    path = folder / f"{name}.txt"
    path.write_text("\n".join(f"{name.upper()} item {i} (paraphrase)" for i in range(1, n + 1)))
    return path


@pytest.fixture(scope="module")
def bias_run(tmp_path_factory: pytest.TempPathFactory, demo_tok) -> Path:
    """A run dir with pretrain/hf and sft/hf: wide random weights (init_range=1.0), so answers
    depend on the item and the two models score differently."""
    run = tmp_path_factory.mktemp("bias_run")
    save_tiny_lm(run / "pretrain" / "hf", demo_tok, seed=1, init_range=1.0)
    save_tiny_lm(run / "sft" / "hf", demo_tok, seed=2, init_range=1.0)
    return run


def _rescore(model_dir: Path, scale: str, items: Path, limit: int) -> dict:
    """The library's own scoring of one model, for comparison with the command's table."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from chimed_lit.eval.api import make_render
    from chimed_lit.eval.keys_builtin import load_scale
    from chimed_lit.eval.runners_scales import run_scale

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        inst = load_scale(scale, items)
    result = run_scale(
        model, tok, inst, modes=["logprob"], render=make_render("chimed", tok), limit=limit
    )
    return result["metrics"]["logprob"]


def test_every_stage_both_scales_chart_table_and_wandb(run_eval_cli, bias_run, tmp_path):
    run = tmp_path / "run"  # the stages, linked into a run dir of this test's own (W&B writes)
    for stage in ("pretrain", "sft"):
        (run / stage).mkdir(parents=True)
        (run / stage / "hf").symlink_to(bias_run / stage / "hf")
    cami, mica = _items(tmp_path, "cami", 40), _items(tmp_path, "mica", 16)
    out = tmp_path / "figure"
    r = run_eval_cli(
        "task=bias",
        f"paths.output_dir={run}",
        f"eval.output_dir={out}",
        f"eval.cami_items={cami}",
        f"eval.mica_items={mica}",
        "eval.limit=8",
        "eval.modes=[logprob]",
        "logger=wandb",
        "eval.progress=false",
    )
    assert r.code == 0, r.err[-3000:]
    rows = list(csv.DictReader((out / "bias.csv").open(encoding="utf-8")))
    assert [(row["model"], row["mode"]) for row in rows] == [
        ("pretrain", "logprob"),
        ("sft", "logprob"),
    ]
    header = list(rows[0])
    for scale in ("cami", "mica"):
        for col in ("bias_score", "max_position_share", "degenerate", "key_status"):
            assert f"{scale}/{col}" in header
    assert [c for c in header if c.startswith("cami/")][1:5] == [
        "cami/authoritarianism",
        "cami/benevolence",
        "cami/social_restrictiveness",
        "cami/community_mental_health_ideology",
    ]
    # the numbers are the library's: each model rescored on its own gives the same row
    for row, stage in zip(rows, ("pretrain", "sft"), strict=True):
        for scale, items in (("cami", cami), ("mica", mica)):
            m = _rescore(bias_run / stage / "hf", scale, items, limit=8)
            assert float(row[f"{scale}/bias_score"]) == m["bias_score"]
            assert float(row[f"{scale}/max_position_share"]) == m["max_position_share"]
            assert row[f"{scale}/degenerate"] == str(m["degenerate"])
            assert row[f"{scale}/key_status"] == m["key_status"]
            assert int(row[f"{scale}/n_answered_items"]) == m["n_answered_items"] == 8
            if scale == "cami":
                for sub, v in m["subscales"].items():
                    assert float(row[f"cami/{sub}"]) == v
        saved = json.loads((out / stage / "cami.json").read_text(encoding="utf-8"))
        assert saved["model"] == str(run / stage / "hf") and len(saved["predictions"]) == 8
    assert rows[0] != {**rows[1], "model": "pretrain"}  # the two models' answers differ
    md = (out / "bias.md").read_text(encoding="utf-8")
    assert md.splitlines()[0] == "| " + " | ".join(header) + " |" and md in r.out
    assert (out / "bias.png").read_bytes()[:8] == PNG
    assert "chart labels in English" in r.err  # no CJK font here (a note, not boxes)
    # W&B (offline): the chart and the table, the table's rows those of the CSV
    media = list(run.glob("wandb/offline-run-*/files/media"))
    assert len(media) == 1, media
    (image,) = media[0].glob("images/bias/figure_*.png")
    assert image.read_bytes()[:8] == PNG
    (table_file,) = media[0].glob("table/bias/table_*.table.json")
    table = json.loads(table_file.read_text(encoding="utf-8"))
    assert table["columns"] == header
    assert [t[:2] for t in table["data"]] == [["pretrain", "logprob"], ["sft", "logprob"]]
    col = header.index("cami/bias_score")
    assert [t[col] for t in table["data"]] == [float(row["cami/bias_score"]) for row in rows]


def test_listed_models_named_by_run_and_stage(run_eval_cli, bias_run, demo_tok, tmp_path):
    other = save_tiny_lm(tmp_path / "other" / "sft" / "hf", demo_tok, seed=3, init_range=1.0)
    out = tmp_path / "figure"
    r = run_eval_cli(
        "task=bias",
        f"eval.models=[{bias_run / 'sft' / 'hf'},{other}]",
        f"eval.mica_items={_items(tmp_path, 'mica', 16)}",
        f"paths.output_dir={tmp_path}",
        f"eval.output_dir={out}",
        "eval.limit=4",
        "eval.modes=[logprob]",
        "eval.progress=false",
    )
    assert r.code == 0, r.err[-3000:]
    rows = list(csv.DictReader((out / "bias.csv").open(encoding="utf-8")))
    names = [f"{bias_run.name}/sft", "other/sft"]  # two `sft` stages: the run tells them apart
    assert [row["model"] for row in rows] == names
    assert not any(c.startswith("cami/") for c in rows[0])  # only the scale given
    assert (out / f"{bias_run.name}_sft" / "mica.json").is_file()
    assert (out / "other_sft" / "mica.json").is_file()
    assert not (tmp_path / "wandb").exists()  # no logger asked for


def test_bias_problems_are_named_before_any_model_loads(run_eval_cli, bias_run, tmp_path):
    base = ("task=bias", f"paths.output_dir={tmp_path}", "eval.progress=false")
    r = run_eval_cli(*base)
    assert r.code == 2 and "task=bias needs eval.cami_items=FILE and/or eval.mica_items" in r.err
    r = run_eval_cli(
        *base,
        f"eval.cami_items={tmp_path}/missing.txt",
        "logger=csv",
        f"model.pretrained={bias_run / 'sft' / 'hf'}",
        f"eval.models=[{bias_run / 'pretrain' / 'hf'}]",
    )
    assert r.code == 2, r.err
    for text in (
        f"eval.cami_items: no such file '{tmp_path}/missing.txt'",
        "logger=csv: eval logs its chart and table to W&B only",
        "set eval.models=[...] or model.pretrained, not both",
    ):
        assert text in r.err, (text, r.err)
    cami = _items(tmp_path, "cami", 40)
    r = run_eval_cli("task=cami", f"eval.cami_items={cami}", f"paths.output_dir={tmp_path}")
    assert r.code == 2 and "eval.cami_items is for task=bias" in r.err
    # a missing model dir: named by its place in eval.models, before any model is scored
    missing = tmp_path / "runs" / "a" / "rlhf" / "hf"
    r = run_eval_cli(
        *base, f"eval.cami_items={cami}", f"eval.models=[{bias_run / 'sft' / 'hf'},{missing}]"
    )
    assert r.code == 4, r.err
    assert f"eval.models[1]='{missing}': no such directory" in r.err
    # a wrong item count: a data error naming the file, also before any model
    (tmp_path / "short").mkdir()
    short = _items(tmp_path / "short", "mica", 15)
    r = run_eval_cli(*base, f"eval.mica_items={short}")
    assert r.code == 3 and str(short) in r.err and "expected 16 items" in r.err
    assert "Traceback" not in r.err
    assert [p.name for p in (tmp_path / "eval").iterdir()] == [".hydra"]  # no result written


def test_model_names_and_folders():
    from chimed_lit.cli.eval_bias import folder_name, model_name, model_names

    assert model_name("SCIR-HI/ChiMed-GPT") == "SCIR-HI/ChiMed-GPT"  # a Hub id keeps its id
    assert folder_name("SCIR-HI/ChiMed-GPT") == "SCIR-HI_ChiMed-GPT"
    assert model_name("runs/a/rlhf/hf") == "rlhf" and model_name("/x/my-model") == "my-model"
    assert model_names(["runs/a/sft/hf", "runs/b/sft/hf", "runs/a/rlhf/hf"]) == [
        "a/sft",
        "b/sft",
        "rlhf",
    ]
    assert model_names(["/x/a/sft/hf", "/y/a/sft/hf"]) == ["a/sft (1)", "a/sft (2)"]
