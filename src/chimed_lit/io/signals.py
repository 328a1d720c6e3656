"""Signals for the whole process: SIGTERM / SIGUSR1 stop a command at once with exit code 75
(`Preempted`), SIGINT with 130 (`Interrupted`), each with one line saying how to continue.

`chimed-lit` installs these handlers before it reads its arguments (`handling()`), so a
scheduler's signal is honoured anywhere: data and model setup, a validation outside the
training loop, export, between stages, rejection sampling's sampling and scoring, `eval`,
`generate`, `chat`. Inside the training loop `callbacks/preemption.py` takes the signals over
(it finishes the running step and saves `preempted.ckpt` first) and gives them back after.

Both exceptions derive from `BaseException`, like `KeyboardInterrupt`, not from `ChimedError`:
an `except Exception` on the way (a library's fallback, an input error mapped to `DataError`, a
checkpoint check that treats any error as "unreadable") must never swallow a signal or turn it
into another exit code. Lightning's Trainer re-raises them after its clean-up, Hydra lets them
pass, and the CLI prints the message alone.

Only the process that installed the handlers raises: a process forked from it (a DataLoader
worker) gets Python's default behaviour. After the first SIGTERM / SIGUSR1 further ones are
ignored, so the clean-up (temporary files removed, Lightning's teardown) runs to its end; a
second SIGINT raises again, as Ctrl-C does.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger("chimed_lit")

PREEMPTED_EXIT_CODE = 75  # EX_TEMPFAIL: try again later (a requeue)
INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
PREEMPT_SIGNALS = ("SIGTERM", "SIGUSR1")
INTERRUPT_SIGNALS = ("SIGINT",)
RESUME_HINT = "run the same command with resume=true to continue"
RERUN_HINT = "run the same command again"


class Stopped(BaseException):
    """A run stopped by a signal; `exit_code` is what the CLI returns, the message says how to
    continue."""

    exit_code = 1


class Preempted(Stopped):
    """SIGTERM or SIGUSR1: stopped (after saving a checkpoint when inside a training step)."""

    exit_code = PREEMPTED_EXIT_CODE


class Interrupted(Stopped):
    """SIGINT (Ctrl-C)."""

    exit_code = INTERRUPTED_EXIT_CODE


_state: dict[str, Any] = {"hint": RESUME_HINT, "owner": None, "stopping": False}


def hint() -> str:
    """How to continue the running command (`resume=true` for `fit`)."""
    return _state["hint"]


def stop_error(signum: int, detail: str = "") -> Stopped:
    """The exception for `signum`, its message one line: what stopped it, `detail` (where, what
    was saved), how to continue and the exit code."""
    sig = signal.Signals(signum)
    kind = Interrupted if sig.name in INTERRUPT_SIGNALS else Preempted
    verb = "interrupted" if kind is Interrupted else "preempted"
    detail = f" {detail}" if detail else ""
    return kind(f"{verb} by {sig.name}{detail}; {hint()} (exit code {kind.exit_code})")


def _handler(signum: int, frame: Any) -> None:
    if os.getpid() != _state["owner"]:  # a forked worker: Python's default behaviour
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    if _state["stopping"] and signum != signal.SIGINT:
        log.warning("%s again while stopping: ignored", signal.Signals(signum).name)
        return
    _state["stopping"] = True
    fit = _state["hint"] == RESUME_HINT
    raise stop_error(signum, "outside a training step (nothing new to save)" if fit else "")


def signals() -> list[signal.Signals]:
    return [
        getattr(signal, s) for s in (*PREEMPT_SIGNALS, *INTERRUPT_SIGNALS) if hasattr(signal, s)
    ]


def is_ours(handler: Any) -> bool:
    return handler is _handler


@contextmanager
def handling(resume_hint: str = RESUME_HINT) -> Iterator[None]:
    """Within the block, SIGTERM / SIGUSR1 raise `Preempted` and SIGINT `Interrupted` where they
    arrive; the previous handlers come back after it. Outside the main thread it does nothing
    (Python only delivers signals there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = dict(_state)
    _state.update(hint=resume_hint, owner=os.getpid(), stopping=False)
    previous = {sig: signal.signal(sig, _handler) for sig in signals()}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        _state.update(saved)
