"""`resume=true` never mixes configs: a checkpoint is continued only with the config and inputs
that wrote it (each named when changed, exit 2); hardware keys and a longer run may change;
`resume_allow_config_change=true` continues anyway and says so in summary.json."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from chimed_lit.demo import demo_path
from chimed_lit.run.resume_guard import changes
from tests.reliability.conftest import QUIET, fit_in_process

TINY = [
    "stage=pretrain",
    *QUIET,
    "model.arch.num_hidden_layers=2",
    "scheduler.total_steps=6",
    "checkpoint.every_n_steps=2",
    "seed=7",
]


CORPUS: list[Path] = []  # the fixture's corpus, as recorded in its checkpoints


@pytest.fixture(scope="module")
def three_steps(tmp_path_factory) -> Path:
    """A finished 3-step pretrain run on a copy of the demo corpus."""
    out = tmp_path_factory.mktemp("guard")
    corpus = out / "corpus.jsonl"
    shutil.copy(demo_path("pretrain.jsonl"), corpus)
    fit_in_process(out / "run", *TINY, "trainer.max_steps=3", f"data.train_files=[{corpus}]")
    CORPUS[:] = [corpus]
    return out


def args_for(run: Path, *extra: str) -> list[str]:
    """The fixture's command on the copy `run` (the corpus stays where it was recorded)."""
    return [
        "fit",
        *TINY,
        "trainer.max_steps=3",
        f"data.train_files=[{CORPUS[0]}]",
        f"paths.output_dir={run}",
        *extra,
    ]


def copy_run(three_steps: Path, tmp_path: Path) -> Path:
    shutil.copytree(three_steps, tmp_path / "c")
    return tmp_path / "c" / "run"


def snapshot(sdir: Path) -> dict[str, bytes]:
    names = ["stage.json", "summary.json", "config.yaml", "hf/model.safetensors"]
    return {n: (sdir / n).read_bytes() for n in names}


def test_a_changed_config_is_refused_naming_every_key(run_cli, three_steps, tmp_path):
    run = copy_run(three_steps, tmp_path)
    before = snapshot(run / "pretrain")
    ckpts = sorted(p.name for p in (run / "pretrain" / "checkpoints").iterdir())
    r = run_cli(*args_for(run, "resume=true", "optimizer.lr=1e-3", "data.batch_size=4"))
    assert r.code == 2, r.err[-2000:]
    assert "optimizer.lr: 0.003 -> 0.001" in r.err
    assert "data.batch_size: 8 -> 4" in r.err
    assert "resume_allow_config_change=true" in r.err
    assert snapshot(run / "pretrain") == before  # nothing of the refused run is written
    assert sorted(p.name for p in (run / "pretrain" / "checkpoints").iterdir()) == ckpts


def test_a_changed_input_file_is_refused(run_cli, three_steps, tmp_path):
    run = copy_run(three_steps, tmp_path)
    corpus = CORPUS[0]
    text = corpus.read_text()
    try:
        corpus.write_text(text + text.splitlines()[0] + "\n")
        r = run_cli(*args_for(run, "resume=true"))
    finally:
        corpus.write_text(text)
    assert r.code == 2, r.err[-2000:]
    assert f"input file {corpus} (sha256)" in r.err
    assert "data.train_files" not in r.err


def test_hardware_keys_and_a_longer_run_may_change(run_cli, three_steps, tmp_path):
    run = copy_run(three_steps, tmp_path)
    extra = ["resume=true", "trainer.max_steps=4", "trainer.precision=32", "data.num_workers=0"]
    r = run_cli(*args_for(run, *extra, "trainer.log_every_n_steps=2"))
    assert r.code == 0, r.err[-2000:]
    summary = json.loads((run / "pretrain" / "summary.json").read_text())
    assert summary["global_step"] == 4
    resume = summary["resume"]
    assert resume["checked"] and resume["changes"] == [] and resume["step"] == 3
    assert resume["checkpoint"].endswith("last.ckpt")
    assert "trainer.max_steps: 3 -> 4" in resume["allowed_changes"]
    assert 'trainer.precision: "32-true" -> 32' in resume["allowed_changes"]


def test_allow_config_change_resumes_and_records_it(run_cli, three_steps, tmp_path):
    run = copy_run(three_steps, tmp_path)
    old = json.loads((run / "pretrain" / "stage.json").read_text())["fingerprint"]
    extra = ["resume=true", "optimizer.lr=1e-3", "resume_allow_config_change=true"]
    r = run_cli(*args_for(run, *extra))
    assert r.code == 0, r.err[-2000:]
    summary = json.loads((run / "pretrain" / "summary.json").read_text())
    assert summary["resume"]["allow_config_change"] is True
    assert summary["resume"]["changes"] == ["optimizer.lr: 0.003 -> 0.001"]
    new = json.loads((run / "pretrain" / "stage.json").read_text())["fingerprint"]
    assert new == summary["fingerprint"] != old


def record(**config) -> dict:
    return {"config": config, "inputs": {"a.jsonl": "1"}, "upstream": {"pretrain": "f1"}}


def test_what_may_change_on_resume():
    base = {"strategy._target_": "chimed_lit.plugins.strategies.auto", "trainer.devices": 1}
    refused, allowed = changes(
        record(**base, **{"optimizer.lr": 1.0}),
        record(**{**base, "trainer.devices": 2, "trainer.num_nodes": 2}),
    )
    assert refused == ["optimizer.lr: 1.0 -> <absent>"]
    assert allowed == ["trainer.devices: 1 -> 2", "trainer.num_nodes: <absent> -> 2"]
    ddp = {**base, "strategy._target_": "chimed_lit.plugins.strategies.ddp"}
    assert changes(record(**base), record(**ddp))[0] == []  # both write one file
    ds = {**base, "strategy._target_": "chimed_lit.plugins.deepspeed.deepspeed"}
    assert changes(record(**base), record(**ds))[0][0].startswith("strategy._target_")
    new = {"config": base, "inputs": {"a.jsonl": "2"}, "upstream": {"pretrain": "f2"}}
    assert changes(record(**base), new)[0] == [
        'input file a.jsonl (sha256): "1" -> "2"',
        'upstream stage pretrain (fingerprint): "f1" -> "f2"',
    ]


def test_a_finished_rejection_round_is_not_reused_under_another_config(
    run_cli, tmp_path, tiny_models
):
    """Rejection sampling reuses finished rounds on resume: only when they were made under this
    rlhf config; a changed keep rule is refused and the finished stage's files stay as they were."""
    lm, reward = tiny_models["lm"], tiny_models["reward"]
    args = [
        "fit",
        "stage=rlhf",
        "stage.algorithm=rejection_sampling",
        *QUIET,
        f"stage.policy={lm}",
        f"stage.reward_model={reward}",
        "stage.rejection.rounds=1",
        "stage.rejection.samples_per_prompt=2",
        "stage.rejection.sft_steps=2",
        "stage.rejection.sampling.max_new_tokens=8",
        "stage.module.val_sampling.max_new_tokens=8",
        "data.max_records=12",
        "sft.data.batch_size=2",
        f"paths.output_dir={tmp_path / 'run'}",
    ]
    assert run_cli(*args).code == 0
    sdir = tmp_path / "run" / "rlhf"
    before = {
        n: (sdir / n).read_bytes() for n in ("config.yaml", "summary.json", "round0/round.json")
    }
    r = run_cli(*args, "stage.rejection.top_fraction=0.5", "resume=true")
    assert r.code == 2, r.err[-2000:]
    assert "rlhf round 0 was made under another config" in r.err
    assert "Traceback" not in r.err
    assert {n: (sdir / n).read_bytes() for n in before} == before
    r = run_cli(
        *args, "stage.rejection.top_fraction=0.5", "resume=true", "resume_allow_config_change=true"
    )
    assert r.code == 0, r.err[-2000:]
    assert "0.5" in (sdir / "config.yaml").read_text()  # promoted once the stage finished
