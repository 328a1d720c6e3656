"""A signal anywhere is a clean requeue: SIGTERM (or SIGUSR1) in any phase of a command exits 75
with one line saying how to continue, SIGINT exits 130, never a traceback and never 0; the same
command with `resume=true` then finishes and exports the weights of a run never interrupted.

Each case runs the real `chimed-lit` in a child process that signals itself at a named phase:
the fault-injection callback's `signal_at` for the phases inside a Trainer run (its setup, the
validation before and after training, right after the last step), and
`tests/reliability/signal_child.py` for the others (data setup, export, between stages,
rejection sampling's sampling and scoring, `generate`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

from chimed_lit.io import signals
from tests.reliability.conftest import QUIET, child_env, run_child, weights

ROOT = Path(__file__).resolve().parents[2]
STEPS = 4
TINY = [
    "stage=pretrain",
    *QUIET,
    "model.arch.num_hidden_layers=2",
    f"trainer.max_steps={STEPS}",
    f"scheduler.total_steps={STEPS}",
    "checkpoint.every_n_steps=2",
    "seed=5",
    "data.batch_size=2",
    "data.max_length=64",
]
RESUME_LINE = "run the same command with resume=true to continue (exit code 75)"


def signal_child(phase: str, sig: str, *args: str) -> subprocess.CompletedProcess:
    """`chimed-lit ARGS` in a child that sends itself `sig` at `phase` (signal_child.py)."""
    return subprocess.run(
        [sys.executable, "-m", "tests.reliability.signal_child", phase, sig, *args],
        env=child_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def drill(phase: str, sig: str = "SIGTERM") -> list[str]:
    return [
        f"callbacks.fault_injection.signal_at={phase}",
        f"callbacks.fault_injection.kill_signal={sig}",
    ]


def assert_stopped(child: subprocess.CompletedProcess, code: int, line: str) -> None:
    assert child.returncode == code, (child.returncode, child.stderr[-3000:])
    last = child.stderr.strip().splitlines()[-1]
    assert last.startswith("chimed-lit: ") and line in last, child.stderr[-3000:]
    assert "Traceback" not in child.stderr, child.stderr[-3000:]


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted run every resumed one must equal."""
    out = tmp_path_factory.mktemp("straight")
    child = run_child("fit", *TINY, f"paths.output_dir={out}")
    assert child.returncode == 0, child.stderr[-3000:]
    return out / "pretrain" / "hf"


def resume_and_compare(run_cli, out: Path, straight: Path) -> None:
    r = run_cli("fit", *TINY, f"paths.output_dir={out}", "resume=true")
    assert r.code == 0, r.err[-3000:]
    assert json.loads((out / "pretrain" / "summary.json").read_text())["global_step"] == STEPS
    assert_equal_weights(straight, out / "pretrain" / "hf")


def assert_equal_weights(a: Path, b: Path) -> None:
    """Bit-identical exported state dicts (fp32 on CPU: a resume replays the same arithmetic)."""
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


# ----- every phase of a fit: exit 75, then resume=true ends with the straight run's weights -----
FIT_PHASES = [
    # (phase, how the child is signalled, what is on disk after the stop)
    ("data_setup", "child", "nothing"),
    ("setup", "drill", "nothing"),
    ("initial_validation", "drill", "nothing"),
    ("after_last_step", "drill", "last"),
    ("final_validation", "drill", "last"),
    ("export", "child", "last"),
]


@pytest.mark.parametrize(("phase", "how", "left"), FIT_PHASES, ids=[p[0] for p in FIT_PHASES])
def test_sigterm_in_each_phase_of_fit_exits_75_and_resumes(
    run_cli, tmp_path, straight, phase, how, left
):
    out = tmp_path / "split"
    args = ("fit", *TINY, f"paths.output_dir={out}")
    if how == "child":
        child = signal_child(phase, "SIGTERM", *args)
    else:
        child = run_child(*args, *drill(phase))
    detail = f"after the last step ({STEPS})" if phase == "after_last_step" else "outside a"
    assert_stopped(child, 75, f"preempted by SIGTERM {detail}")
    assert RESUME_LINE in child.stderr
    sdir = out / "pretrain"
    assert not (sdir / "hf").exists() and not (sdir / "summary.json").exists()
    assert not list(sdir.glob(".hf.tmp*")) if sdir.is_dir() else True
    ckpts = sorted(p.name for p in (sdir / "checkpoints").glob("*.ckpt")) if sdir.is_dir() else []
    if left == "nothing":
        assert ckpts == []
    else:
        assert "last.ckpt" in ckpts
        state = torch.load(
            sdir / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu"
        )
        assert state["global_step"] == STEPS
    resume_and_compare(run_cli, out, straight)


def test_sigusr1_outside_the_training_loop_exits_75(tmp_path):
    child = run_child(
        "fit", *TINY, f"paths.output_dir={tmp_path}", *drill("initial_validation", "SIGUSR1")
    )
    assert_stopped(child, 75, "preempted by SIGUSR1 outside a training step")


# ----- SIGINT: exit 130, one line, no traceback ----------------------------------------------------
def test_sigint_mid_step_saves_and_exits_130(run_cli, tmp_path, straight):
    child = run_child(
        "fit",
        *TINY,
        f"paths.output_dir={tmp_path}",
        "callbacks.fault_injection.kill_at_step=1",
        "callbacks.fault_injection.kill_signal=SIGINT",
    )
    saved = tmp_path / "pretrain" / "checkpoints" / "preempted.ckpt"
    assert_stopped(child, 130, f"interrupted by SIGINT at step 2: saved {saved}")
    assert "run the same command with resume=true to continue (exit code 130)" in child.stderr
    resume_and_compare(run_cli, tmp_path, straight)


def test_sigint_outside_the_training_loop_exits_130(tmp_path):
    child = run_child(
        "fit", *TINY, f"paths.output_dir={tmp_path}", *drill("final_validation", "SIGINT")
    )
    assert_stopped(child, 130, "interrupted by SIGINT outside a training step")


def test_sigterm_during_generate_exits_75_and_says_run_again(tmp_path, tiny_models):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "头痛怎么办？"}, ensure_ascii=False) + "\n")
    child = signal_child(
        "generate",
        "SIGTERM",
        "generate",
        f"model.pretrained={tiny_models['lm']}",
        f"input={prompts}",
        f"output={tmp_path / 'replies.jsonl'}",
    )
    assert_stopped(child, 75, "preempted by SIGTERM; run the same command again (exit code 75)")
    assert not (tmp_path / "replies.jsonl").exists()


# ----- between stages and inside rejection sampling (longer: two stages, or RL rounds) --------------
@pytest.mark.slow
def test_sigterm_between_stages_resumes_to_the_same_weights(run_cli, tmp_path):
    args = [
        "stage=sft",
        *QUIET,
        "model.arch.num_hidden_layers=2",
        "trainer.max_steps=3",
        "scheduler.total_steps=3",
        "pretrain.trainer.max_steps=3",
        "pretrain.scheduler.total_steps=3",
        "checkpoint.every_n_steps=1",
        "data.max_records=16",
        "data.batch_size=2",
        "seed=9",
    ]
    straight, split = tmp_path / "straight", tmp_path / "split"
    r = run_cli("fit", *args, f"paths.output_dir={straight}")
    assert r.code == 0, r.err[-3000:]
    child = signal_child("between_stages", "SIGTERM", "fit", *args, f"paths.output_dir={split}")
    assert_stopped(child, 75, "preempted by SIGTERM outside a training step")
    assert not (split / "sft").exists()
    r = run_cli("fit", *args, f"paths.output_dir={split}", "resume=true")
    assert r.code == 0, r.err[-3000:]
    for stage in ("pretrain", "sft"):
        assert_equal_weights(straight / stage / "hf", split / stage / "hf")


RS = [
    "stage=rlhf",
    "stage.algorithm=rejection_sampling",
    *QUIET,
    "stage.rejection.rounds=1",
    "stage.rejection.samples_per_prompt=2",
    "stage.rejection.sft_steps=2",
    "stage.rejection.sampling.max_new_tokens=12",
    "stage.module.val_sampling.max_new_tokens=12",
    "data.max_records=12",
    "checkpoint.every_n_steps=1",
    "sft.data.batch_size=2",
    "sft.scheduler.total_steps=2",
    "seed=17",
]


@pytest.mark.slow
def test_sigterm_in_rejection_sampling_sampling_and_scoring(run_cli, tmp_path, tiny_models):
    args = [*RS, f"stage.policy={tiny_models['lm']}", f"stage.reward_model={tiny_models['reward']}"]
    straight = tmp_path / "straight"
    r = run_cli("fit", *args, f"paths.output_dir={straight}")
    assert r.code == 0, r.err[-3000:]
    for phase in ("rs_sampling", "rs_scoring"):
        out = tmp_path / phase
        child = signal_child(phase, "SIGTERM", "fit", *args, f"paths.output_dir={out}")
        assert_stopped(child, 75, "preempted by SIGTERM outside a training step")
        assert not (out / "rlhf" / "hf").exists()
        r = run_cli("fit", *args, f"paths.output_dir={out}", "resume=true")
        assert r.code == 0, r.err[-3000:]
        assert_equal_weights(straight / "rlhf" / "hf", out / "rlhf" / "hf")


# ----- the handlers themselves, in this process -------------------------------------------------------
def test_handling_raises_where_the_signal_arrives_and_restores_the_previous_handlers():
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)}
    with signals.handling(signals.RERUN_HINT):
        with pytest.raises(
            signals.Preempted, match="^preempted by SIGTERM; run the same command again"
        ):
            os.kill(os.getpid(), signal.SIGTERM)
        assert not isinstance(signals.Preempted("x"), Exception)  # no `except Exception` eats it
    with signals.handling(), pytest.raises(signals.Interrupted, match=r"\(exit code 130\)"):
        os.kill(os.getpid(), signal.SIGINT)
    assert {s: signal.getsignal(s) for s in before} == before


class _Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_the_training_loop_gives_the_process_handlers_back(tmp_path):
    """PreemptionCheckpoint replaces the handlers for the training loop and Lightning for its
    runs; after fit the process-wide ones of io/signals.py are in place again, not the default."""
    from chimed_lit.callbacks.preemption import PreemptionCheckpoint

    seen = {}

    class Look(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen["in_loop"] = signal.getsignal(signal.SIGTERM)

    data = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.ones(4, 2)), batch_size=2
    )
    with signals.handling():
        trainer = L.Trainer(
            max_steps=2,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=tmp_path,
            callbacks=[PreemptionCheckpoint(dirpath=str(tmp_path)), Look()],
        )
        trainer.fit(_Tiny(), data)
        assert not signals.is_ours(seen["in_loop"])  # the deferred handler during steps
        for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT):
            assert signals.is_ours(signal.getsignal(sig)), sig
