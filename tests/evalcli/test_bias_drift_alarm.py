"""The bias drift alarm of `BiasScaleCallback` in a real `L.Trainer.fit` of a tiny model, on
CAMI with placeholder item texts (the questionnaire's wording is not shipped)."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import pytest

from tests.evalcli.test_evalcli_callbacks import _metrics, _tiny_module

CAMI_SUBSCALES = (
    "authoritarianism",
    "benevolence",
    "social_restrictiveness",
    "community_mental_health_ideology",
)


def _fit(
    tok,
    tmp_path: Path,
    drift_alarm: float | None,
    max_steps: int = 3,
    checkpoint: L.Callback | None = None,
    ckpt_path: str | None = None,
):
    """Fit `max_steps` steps scoring CAMI at every step; the callback and the scored CSV rows
    by step."""
    from lightning.pytorch.loggers import CSVLogger

    from chimed_lit.callbacks.bias_scale import BiasScaleCallback
    from chimed_lit.data.pretrain import PretrainDataModule

    tmp_path.mkdir(parents=True, exist_ok=True)
    items = tmp_path / "cami_items.txt"
    items.write_text("\n".join(f"CAMI item {n} (placeholder)" for n in range(1, 41)), "utf-8")
    bias = BiasScaleCallback(
        instrument="cami",
        items_file=str(items),
        every_n_steps=1,
        limit=8,  # items 1-8 cover the four subscales, each worded both ways
        drift_alarm=drift_alarm,
        dirpath=str(tmp_path),
    )
    dm = PretrainDataModule(
        tokenizer=tok,
        train_files=None,
        batch_size=2,
        max_length=64,
        cache_dir=str(tmp_path / "cache"),
    )
    logger = CSVLogger(tmp_path, name="csv", version=0)
    trainer = L.Trainer(
        max_steps=max_steps,
        accelerator="cpu",
        logger=logger,
        callbacks=[bias] + ([checkpoint] if checkpoint else []),
        enable_checkpointing=checkpoint is not None or ckpt_path is not None,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        log_every_n_steps=1,
        default_root_dir=tmp_path,
    )
    trainer.fit(_tiny_module(tok), datamodule=dm, ckpt_path=ckpt_path)
    rows = [r for r in _metrics(Path(logger.log_dir)) if r.get("bias/bias_score")]
    return bias, {int(r["step"]): r for r in rows}


def _alarms(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "bias drift alarm" in r.getMessage()]


def test_alarm_fires_logs_one_and_warns_once(demo_tok, tmp_path, caplog):
    # -1.0 is below any possible drift of a 0..1 score: every scoring after the start fires
    with caplog.at_level(logging.WARNING, logger="chimed_lit"):
        bias, scored = _fit(demo_tok, tmp_path, drift_alarm=-1.0)
    assert sorted(scored) == [0, 1, 2, 3]  # the start, then every step
    assert all(scored[s][f"bias/subscale/{name}"] for s in scored for name in CAMI_SUBSCALES)
    start = float(scored[0]["bias/bias_score_normalized"])
    assert scored[0]["bias/drift"] == scored[0]["bias/drift_alarm"] == ""
    for step in (1, 2, 3):
        now = float(scored[step]["bias/bias_score_normalized"])
        assert float(scored[step]["bias/drift"]) == pytest.approx(now - start)
        assert float(scored[step]["bias/drift_alarm"]) == 1.0
    (message,) = _alarms(caplog)  # fired three times, printed once
    now = float(scored[1]["bias/bias_score_normalized"])
    assert message.startswith("bias drift alarm: cami bias_score_normalized")
    assert f"from {start:.3f} at step 0 to {now:.3f} at step 1" in message
    assert "drift_alarm=-1" in message
    # a random model's answers are degenerate, and the warning says what that means
    assert ("answering habit" in message) == (scored[1]["bias/degenerate"] == "1.0")
    assert bias.drift.baseline == {"step": 0, "normalized": {"logprob": pytest.approx(start)}}


def test_alarm_above_any_drift_never_fires(demo_tok, tmp_path, caplog):
    # a 0..1 score cannot rise by more than 1.0
    with caplog.at_level(logging.WARNING, logger="chimed_lit"):
        _, scored = _fit(demo_tok, tmp_path, drift_alarm=1.0)
    assert [float(scored[s]["bias/drift_alarm"]) for s in (1, 2, 3)] == [0.0, 0.0, 0.0]
    assert _alarms(caplog) == []


def test_resumed_stage_compares_with_its_start(demo_tok, tmp_path, caplog):
    """The baseline travels in the checkpoint: the resumed fit does not rescore its own start
    and measures drift from the first fit's step 0 (and warns again, once, in its own fit)."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    first = tmp_path / "first"
    ckpt = ModelCheckpoint(dirpath=first / "ckpt", save_last=True, every_n_train_steps=2)
    _, before = _fit(demo_tok, first, drift_alarm=-1.0, max_steps=2, checkpoint=ckpt)
    start = float(before[0]["bias/bias_score_normalized"])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="chimed_lit"):
        resumed, after = _fit(
            demo_tok,
            tmp_path / "second",
            drift_alarm=-1.0,
            max_steps=3,
            checkpoint=ModelCheckpoint(dirpath=first / "ckpt", every_n_train_steps=2),
            ckpt_path=str(first / "ckpt" / "last.ckpt"),
        )
    assert sorted(resumed.history) == [3]  # not step 2 again: the baseline came with the state
    now = float(after[3]["bias/bias_score_normalized"])
    assert float(after[3]["bias/drift"]) == pytest.approx(now - start)
    assert len(_alarms(caplog)) == 1 and "at step 0 to" in _alarms(caplog)[0]


def _metrics_at(normalized: float | None, degenerate: bool = False) -> dict[str, dict]:
    return {"logprob": {"bias_score_normalized": normalized, "degenerate": degenerate}}


def test_drift_threshold_is_a_strict_rise_and_warns_once(caplog):
    """The alarm's arithmetic with scores a tiny random model cannot produce (its answers
    sit at the midpoint): drops never fire, a rise equal to the threshold does not, and a
    start with no score waits for the first scoring that has one."""
    from chimed_lit.callbacks.bias_drift import DriftAlarm

    alarm = DriftAlarm(0.1)
    modes = ("logprob",)
    with caplog.at_level(logging.WARNING, logger="chimed_lit"):
        assert alarm.update(0, _metrics_at(None), modes, "mica", warn=True) == {}
        assert alarm.update(5, _metrics_at(0.25), modes, "mica", warn=True) == {}  # baseline
        steps = {10: 0.05, 20: 0.375, 30: 0.5, 40: 0.75}  # drift -0.2, +0.125, +0.25, +0.5
        logged = {
            s: alarm.update(s, _metrics_at(x, s == 30), modes, "mica", True)
            for s, x in steps.items()
        }
    assert {s: out["bias/drift"] for s, out in logged.items()} == {
        10: pytest.approx(-0.2),
        20: pytest.approx(0.125),
        30: pytest.approx(0.25),
        40: pytest.approx(0.5),
    }
    assert {s: out["bias/drift_alarm"] for s, out in logged.items()} == {
        10: 0.0,
        20: 1.0,
        30: 1.0,
        40: 1.0,
    }
    (message,) = _alarms(caplog)
    assert "mica bias_score_normalized went from 0.250 at step 5 to 0.375 at step 20" in message
    assert "+0.125, above drift_alarm=0.1" in message and "degenerate" not in message
    # exactly at the threshold: no alarm
    edge = DriftAlarm(0.25)
    edge.update(0, _metrics_at(0.25), modes, "x", warn=False)
    assert edge.update(1, _metrics_at(0.5), modes, "x", warn=False)["bias/drift_alarm"] == 0.0
    # None: drift is logged, no alarm; another rank (warn=False) counts but never prints
    off = DriftAlarm(None)
    off.update(0, _metrics_at(0.0), modes, "x", warn=True)
    assert off.update(1, _metrics_at(1.0), modes, "x", warn=True) == {"bias/drift": 1.0}
    quiet = DriftAlarm(0.0)
    quiet.update(0, _metrics_at(0.0), modes, "x", warn=False)
    assert quiet.update(1, _metrics_at(1.0), modes, "x", warn=False)["bias/drift_alarm"] == 1.0
    assert quiet.warned and len(_alarms(caplog)) == 1


def test_drift_alarm_must_be_a_number():
    from chimed_lit.callbacks.bias_scale import BiasScaleCallback
    from chimed_lit.io.errors import ConfigError

    with pytest.raises(ConfigError, match="drift_alarm=nan"):
        BiasScaleCallback(drift_alarm=float("nan"))
