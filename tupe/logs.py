"""Library modules report through ``logging`` (``logging.getLogger(__name__)``, under "tupe");
the command-line entry points call ``cli_logging()`` once, which sends those records to the
terminal's stderr, one line each (what the commands printed before). A program that
imports tupe configures logging as it likes; with no configuration at all, Python prints
warnings to stderr by itself."""

from __future__ import annotations

import logging
import sys


class _StderrHandler(logging.StreamHandler):
    """A handler that writes to whatever ``sys.stderr`` is at the time of the record (a test's
    captured stream, a redirected one), not the stream of the moment it was made."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def cli_logging(level: int = logging.INFO) -> None:
    """Route the library's records (INFO and up) to stderr, one line each; idempotent."""
    logger = logging.getLogger("tupe")
    logger.setLevel(level)
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)


def listed(items, shown: int = 5) -> str:
    """The first ``shown`` items, comma-separated, with ", ..." where there are more: line numbers
    or rows named in a message."""
    return ", ".join(map(str, items[:shown])) + (", ..." if len(items) > shown else "")
