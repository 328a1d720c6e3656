"""`python -m tests.reliability.signal_child PHASE SIGNAL chimed-lit-args...`: the real CLI, with
the process sending itself SIGNAL once, when it reaches PHASE. For the phases no Lightning hook
reaches (the fault-injection callback's `signal_at` covers the ones inside a Trainer run), the
function that runs the phase is wrapped here:

- `data_setup`: on entering a DataModule's `setup` (tokenizing the stage's data)
- `export`: on entering `save_pretrained` of a model (the `hf/` export)
- `between_stages`: when the first stage's `run` returns, before the next stage starts
- `rs_sampling` / `rs_scoring`: on entering rejection sampling's `sample_replies` /
  `score_replies`
- `generate`: on entering `generate` (the `chimed-lit generate` command)
"""

from __future__ import annotations

import functools
import os
import signal
import sys


def _fire(name: str) -> None:
    os.kill(os.getpid(), getattr(signal, name))


def _on_entry(owner: object, attr: str, sig: str) -> None:
    original = getattr(owner, attr)
    fired = []

    @functools.wraps(original)
    def wrapped(*args, **kwargs):
        if not fired:
            fired.append(True)
            _fire(sig)
        return original(*args, **kwargs)

    setattr(owner, attr, wrapped)


def _on_return(owner: object, attr: str, sig: str) -> None:
    original = getattr(owner, attr)
    fired = []

    @functools.wraps(original)
    def wrapped(*args, **kwargs):
        out = original(*args, **kwargs)
        if not fired:
            fired.append(True)
            _fire(sig)
        return out

    setattr(owner, attr, wrapped)


def arm(phase: str, sig: str) -> None:
    if phase == "data_setup":
        from chimed_lit.data.base import BaseDataModule

        _on_entry(BaseDataModule, "setup", sig)
    elif phase == "export":
        from transformers import PreTrainedModel

        _on_entry(PreTrainedModel, "save_pretrained", sig)
    elif phase == "between_stages":
        from chimed_lit.stages import Stage

        _on_return(Stage, "run", sig)
    elif phase in ("rs_sampling", "rs_scoring"):
        from chimed_lit.stages import rejection_sampling

        name = "sample_replies" if phase == "rs_sampling" else "score_replies"
        _on_entry(rejection_sampling, name, sig)
    elif phase == "generate":
        from chimed_lit.inference import generation

        _on_entry(generation, "generate", sig)
    else:
        raise SystemExit(f"unknown phase {phase!r}")


if __name__ == "__main__":
    phase, sig, *args = sys.argv[1:]
    arm(phase, sig)
    from chimed_lit.cli.main import main

    sys.exit(main(args))
