"""The demo tokenizer round-trips real Chinese text; pyproject lists every package folder."""

from __future__ import annotations

from pathlib import Path

import tomllib

from tests.conftest import shared

ROOT = Path(__file__).resolve().parents[2]


def test_demo_tokenizer_round_trips_real_text(demo_tok):
    lines = (
        shared("pretrain/medicalgpt_fever_textbook.txt").read_text(encoding="utf-8").splitlines()
    )
    for line in lines[:200]:
        ids = demo_tok(line, add_special_tokens=False)["input_ids"]
        assert demo_tok.decode(ids) == line
        assert demo_tok.unk_token_id not in ids  # byte fallback: nothing is unknown


def test_demo_tokenizer_compresses_demo_text(demo_tok):
    text = "高血压患者应低盐饮食，规律服用降压药，定期监测血压。"
    assert len(demo_tok(text, add_special_tokens=False)["input_ids"]) < len(text)


def test_chat_template_is_chimed(demo_tok):
    text = demo_tok.apply_chat_template(
        [{"role": "user", "content": "头痛怎么办？"}, {"role": "assistant", "content": "多休息。"}],
        tokenize=False,
    )
    assert text == "[human]:头痛怎么办？\n[bot]:多休息。</s>"


def test_every_package_folder_is_listed():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(meta["tool"]["setuptools"]["packages"])
    dirs = {
        "chimed_lit.plugins": ROOT / "plugins",
        "chimed_lit.callbacks": ROOT / "callbacks",
        "chimed_lit.configs": ROOT / "configs",
        "chimed_lit": ROOT / "src" / "chimed_lit",
    }
    found = set()
    for name, base in dirs.items():
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base).parts
            found.add(".".join((name, *rel)))
    assert found == listed, (found - listed, listed - found)
