"""What every verb of the ``weaksep`` command shares: its name and its one-line errors."""

from __future__ import annotations

import re
import sys

PROG = "weaksep"


class CliError(Exception):
    """Bad input from the user: reported in one line, exit status 2."""


def one_line(message: str, limit: int = 600) -> str:
    """``message`` on one line (whitespace runs as one space), cut at ``limit`` characters."""
    line = re.sub(r"\s+", " ", str(message)).strip()
    return line if len(line) <= limit else line[: limit - 1] + "…"


def fail(message: str) -> int:
    """Print ``weaksep: error: <message>`` on stderr; the exit status of bad input."""
    print(f"{PROG}: error: {one_line(message)}", file=sys.stderr)
    return 2


def log(message: str) -> None:
    """Print ``weaksep: <message>`` on stderr, on one line."""
    print(f"{PROG}: {one_line(message)}", file=sys.stderr)
