"""Shared test setup: offline everything, one cache per session, and a helper to run the CLI."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.pop("WANDB_API_KEY", None)  # with a key and no network wandb.init hangs ~100 s

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared(rel: str) -> Path:
    """A file of the shared research-only samples (skip the test when they are absent)."""
    path = SHARED_DATA / rel
    if not path.exists():
        pytest.skip(f"shared sample data not found: {path}")
    return path


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("chimed_cache")
    os.environ["CHIMED_LIT_CACHE"] = str(cache)
    return cache


TINY_ARCH = dict(
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=4,
    intermediate_size=128,
    max_position_embeddings=512,
)


@pytest.fixture
def one_thread():
    """One torch thread in this process, as in child runs: the same float sums bit for bit, and
    no slowdown from oversubscribed cores when several test processes share a machine."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture
def hydra_ctx():
    """Hydra's compose API over the shipped configs (as `chimed-lit` composes them)."""
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_module("chimed_lit.configs", version_base="1.3"):
        yield
    GlobalHydra.instance().clear()


@pytest.fixture(scope="session")
def demo_tok(_session_cache: Path):
    from chimed_lit.models.demo_tokenizer import demo_tokenizer

    return demo_tokenizer(_session_cache)


class CliResult:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err


def _repoint_log_streams() -> None:
    """Log handlers an earlier in-process run configured (Hydra's job logging) still hold that
    test's captured stderr, closed since: point them at this test's, so a log line is output,
    not a "--- Logging error ---" traceback."""
    import logging

    loggers = [logging.getLogger(), *map(logging.getLogger, list(logging.root.manager.loggerDict))]
    for lg in loggers:
        for h in getattr(lg, "handlers", []):
            stream = getattr(h, "stream", None)
            if type(h) is logging.StreamHandler and getattr(stream, "closed", False):
                h.stream = sys.stderr  # not setStream: it flushes the closed stream first


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture):
    """Run `chimed-lit ARGS` in this process (as the console script would) and capture output."""
    from chimed_lit.cli.main import main

    def run(*args: str) -> CliResult:
        _repoint_log_streams()
        saved = sys.argv
        try:
            code = main(list(args))
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        finally:
            sys.argv = saved
            from hydra.core.global_hydra import GlobalHydra

            GlobalHydra.instance().clear()
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


REGIME_STAGE = "rlhf"  # the embedded default regime, run once for the stage tests


@pytest.fixture(scope="session")
def regime(tmp_path_factory: pytest.TempPathFactory, _session_cache: Path) -> Path:
    """One `chimed-lit fit stage=<furthest>` on the tiny default, shared by the stage tests
    (W&B offline and CSV side by side); returns its output dir."""
    import time

    from hydra.core.global_hydra import GlobalHydra

    from chimed_lit.cli.main import main

    out = tmp_path_factory.mktemp("regime")
    saved = sys.argv
    started = time.time()
    try:
        code = main(
            [
                "fit",
                f"stage={REGIME_STAGE}",
                f"paths.output_dir={out}",
                "logger=[wandb,csv]",
                "trainer.log_every_n_steps=1",
            ]
        )
    finally:
        sys.argv = saved
        GlobalHydra.instance().clear()
    assert code == 0
    (out / "elapsed_s.txt").write_text(f"{time.time() - started:.1f}")
    return out
