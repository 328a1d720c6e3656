"""TRL 1.12.0 (the last release with `PPOTrainer`) in its own venv, for the PPO comparison.

trl 1.16 (the `bench` extra) lives in the dev venv; trl 1.12 would replace it there, so it gets
`benchmarks/.venv-trl112` (git-ignored), with torch pinned by the repo's constraints file and
the same transformers as the dev venv, so both sides run the same model code.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv-trl112"
TRL_PPO = "1.12.0"


def python() -> Path:
    return VENV / "bin" / "python"


def ready() -> bool:
    if not python().is_file():
        return False
    probe = subprocess.run(
        [str(python()), "-c", "import trl; print(trl.__version__)"], capture_output=True, text=True
    )
    return probe.returncode == 0 and probe.stdout.strip() == TRL_PPO


def ensure() -> Path:
    """Create the venv once (about a minute with cached wheels); return its python."""
    if ready():
        return python()
    venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    pins = [
        f"torch=={version('torch').split('+')[0]}",
        f"transformers=={version('transformers')}",
        f"accelerate=={version('accelerate')}",
        f"datasets=={version('datasets')}",
        "psutil",
        f"trl=={TRL_PPO}",
    ]
    constraints = ROOT.parent / "constraints.txt"
    cmd = [str(python()), "-m", "pip", "install", "-q", *pins]
    if constraints.is_file():
        cmd += ["-c", str(constraints)]
    subprocess.run(cmd, check=True)
    if not ready():
        raise RuntimeError(f"trl {TRL_PPO} did not import in {VENV}")
    return python()


if __name__ == "__main__":
    print(ensure())
    sys.exit(0)
