"""The one error type evaluation input raises, so callers can catch bad data in one place."""

from __future__ import annotations

from pathlib import Path


class EvalDataError(ValueError):
    """Bad evaluation input, located by file, line (1-based, or None) and field.

    Subclasses ValueError so generic handlers still work; the attributes let a CLI print the
    place without parsing the message.
    """

    def __init__(
        self, file: str | Path | None, line: int | None, field: str | None, message: str
    ) -> None:
        self.file = str(file) if file is not None else None
        self.line = line
        self.field = field
        self.message = message
        where = self.file or "<input>"
        if line is not None:
            where += f":{line}"
        if field:
            where += f": field '{field}'"
        super().__init__(f"{where}: {message}")
