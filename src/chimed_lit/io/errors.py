"""User-facing errors: the CLI prints their message alone, never a stack trace."""

from __future__ import annotations


class ChimedError(Exception):
    """An error the user can fix; `exit_code` is what the CLI returns."""

    exit_code = 1


class ConfigError(ChimedError):
    """Unknown keys, wrong types, impossible combinations: found before any model is built."""

    exit_code = 2

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        head = (
            "configuration error"
            if len(self.problems) == 1
            else (f"{len(self.problems)} configuration errors")
        )
        super().__init__(head + ":\n" + "\n".join(f"  - {p}" for p in self.problems))


class DataError(ChimedError):
    """A bad record or file, named by file, line (or row) and field."""

    exit_code = 3

    def __init__(
        self, source: str, message: str, where: str | None = None, field: str | None = None
    ):
        self.source, self.where, self.field, self.reason = source, where, field, message
        loc = source + (f", {where}" if where else "")
        fld = f" field '{field}':" if field else ""
        super().__init__(f"{loc}:{fld} {message}")


class CheckpointError(ChimedError):
    """A missing, corrupt or mismatched checkpoint or model directory."""

    exit_code = 4
