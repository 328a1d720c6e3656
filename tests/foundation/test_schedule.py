"""The warmup + cosine schedule (`optim.WarmupCosine`): by hand, against transformers'
`get_cosine_with_min_lr_schedule_with_warmup` (whose factor it writes out) up to the horizon,
flat at the floor after it, and without the horizon in its checkpointed state."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from chimed_lit.modules.optim import WarmupCosine


def _lrs(scheduler, steps: int) -> list[float]:
    out = []
    for _ in range(steps):
        out.append(scheduler.get_last_lr()[0])
        scheduler.optimizer.step()
        scheduler.step()
    return out


def _opt(lr: float = 2.0) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def test_by_hand():
    lrs = _lrs(WarmupCosine(warmup_steps=2, min_lr_ratio=0.1).build(_opt(), 10), 12)
    # warmup 0, 1/2, then cosine from the peak (2.0) to 0.1 x peak at step 10, flat after
    want = (
        [0.0, 1.0, 2.0]
        + [2.0 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (s - 2) / 8))) for s in range(3, 11)]
        + [0.2]
    )
    assert lrs == pytest.approx(want)
    assert lrs[6] == pytest.approx(2.0 * 0.55)  # halfway through the decay


@pytest.mark.parametrize(
    ("total", "warmup", "ratio", "floor"),
    [(100, None, 0.05, 0.1), (7, 3, 0.0, 0.0), (1, None, 0.5, 0.2), (40, 0, 0.0, 0.3)],
)
def test_matches_transformers(total, warmup, ratio, floor):
    from transformers import get_cosine_with_min_lr_schedule_with_warmup

    ours = WarmupCosine(warmup_steps=warmup, warmup_ratio=ratio, min_lr_ratio=floor).build(
        _opt(), total
    )
    w = warmup if warmup is not None else int(ratio * total)
    hf = get_cosine_with_min_lr_schedule_with_warmup(
        _opt(), num_warmup_steps=w, num_training_steps=max(total, 1), min_lr_rate=floor
    )
    assert _lrs(ours, total + 1) == pytest.approx(_lrs(hf, total + 1))
    assert ours.get_last_lr()[0] == pytest.approx(2.0 * floor)  # and it stays there
    assert _lrs(ours, 3) == pytest.approx([2.0 * floor] * 3)


def test_resumed_run_takes_its_own_horizon():
    """A checkpoint restores the step count, not the horizon: resuming with a longer run (the
    Trainer's new estimate) decays over the new length, as with transformers' schedule."""
    first = WarmupCosine(warmup_steps=0, min_lr_ratio=0.0).build(_opt(), 10)
    _lrs(first, 5)
    resumed = WarmupCosine(warmup_steps=0, min_lr_ratio=0.0).build(_opt(), 20)
    resumed.load_state_dict(first.state_dict())
    assert resumed.last_epoch == 5
    assert resumed.lr_lambdas[0](5) == pytest.approx(0.5 * (1 + math.cos(math.pi * 5 / 20)))


def test_building_it_does_not_import_transformers_optimization():
    """The point of writing the factor out: no Trainer utilities (and peft) in every worker."""
    code = (
        "import sys, torch; from chimed_lit.modules.optim import WarmupCosine; "
        "WarmupCosine().build(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), 10); "
        "print('transformers.optimization' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
