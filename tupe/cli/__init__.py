"""Command-line entry points (thin wrappers over the library), and what they share."""

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Optional, Sequence

# the process's umask, read once at import (reading it means setting it: not from threads)
_UMASK = os.umask(0o022)
os.umask(_UMASK)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every command's --help: the description as written, and each option's default appended
    to its help ("(default: X)", "(default: off)" for a switch) unless the help says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text.lower() or action.default is argparse.SUPPRESS or not action.option_strings:
            return text
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            return text + (" (default: off)" if action.default is False else " (default: on)")
        if action.default is None or action.default == "" or action.default == []:
            return text + " (default: not set)"
        return text + " (default: %(default)s)"


def at_least(low, kind=int):
    """An argparse type: a number of ``kind`` that is >= ``low``, else argparse's error naming the
    option ("argument --log-interval: must be >= 1, got 0"), exit 2, before anything runs."""
    def parse(text: str):
        value = kind(text)                    # ValueError: argparse's "invalid int value: 'x'"
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {text}")
        return value
    parse.__name__ = kind.__name__
    return parse


def fraction(text: str) -> float:
    """An argparse type: a float in [0, 1] (a probability, a ratio)."""
    value = float(text)
    if not 0.0 <= value <= 1.0:                # also NaN
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


fraction.__name__ = "float"


def comma_list(item=str, what: str = "names", accept=None, rule: str = "", empty: bool = False):
    """An argparse type: a comma-separated list (a sweep's tasks, schemes or learning rates), each
    item parsed by ``item`` and, with ``accept``, accepted by it (``rule`` says how: "> 0"), none
    twice (a repeat runs the same runs again, into the same folders); empty only if ``empty``."""
    def parse(text: str) -> list:
        try:
            values = [item(x.strip()) for x in text.split(",") if x.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"comma-separated {what}, got {text!r}") from None
        if (not values and not empty) or (accept is not None and not all(accept(v) for v in values)):
            raise argparse.ArgumentTypeError(f"comma-separated {what} {rule}".rstrip() + f", got {text!r}")
        if len(set(values)) < len(values):
            raise argparse.ArgumentTypeError(f"{text!r} names one twice")
        return values
    parse.__name__ = f"list of {what}"
    return parse


rates = comma_list(float, "numbers", lambda v: v > 0, "> 0")   # a learning-rate grid (also rejects NaN)


def given_dests(parser: argparse.ArgumentParser, argv: Sequence[str]) -> set[str]:
    """The destinations of the options that appear on the command line ("given"), whatever their
    value, even the default's; options left at their argparse default are not given."""
    given = set()
    for token in argv:
        if token == "--":
            break
        action = parser._option_string_actions.get(token.split("=", 1)[0]) if token.startswith("-") else None
        if action is not None:
            given.add(action.dest)
    return given


def refuse_inert(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]],
                 rules: Iterable[tuple[str, bool, str]]) -> None:
    """``parser.error`` (exit 2) naming an option given on ``argv`` (default: sys.argv) that does
    nothing in this invocation: ``rules`` are (its destination, whether it acts here, why not)."""
    given = given_dests(parser, sys.argv[1:] if argv is None else argv)
    for dest, acts, why in rules:
        if dest in given and not acts:
            flag = max((o for a in parser._actions if a.dest == dest for o in a.option_strings), key=len)
            parser.error(f"{flag} does nothing here ({why}); leave it out")


def attach_flag_values(argv: list[str], options: tuple[str, ...]) -> list[str]:
    """``["--extra", "--cpu"]`` -> ``["--extra=--cpu"]`` for options whose value is itself a flag
    list: argparse takes a lone value that starts with "-" for the next option and stops with
    "expected one argument" (a value with a space in it, ``'--cpu --bf16'``, it takes as is)."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] in options and i + 1 < len(argv):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


class Stopped(Exception):
    """SIGTERM received by a command (``stop_on_sigterm``): it unwinds like Ctrl-C, so that the
    command's cleanup runs (temporary output removed, child processes stopped)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stopped(signum, frame):
    raise Stopped(signum)


@contextmanager
def stop_on_sigterm():
    """For the duration, SIGTERM raises ``Stopped`` in the main thread (the default action kills
    the process without any cleanup); the earlier handler is put back after. Run from another
    thread, where handlers cannot be set, nothing changes."""
    previous = signal.signal(signal.SIGTERM, _raise_stopped) \
        if threading.current_thread() is threading.main_thread() else None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def write_json(path: Path, value, indent: int = 2) -> None:
    """``value`` as JSON in ``path``, whole or not at all (``write_text_whole``). The records a
    command resumes from (a study's state, a sweep's results) are written this way."""
    write_text_whole(path, json.dumps(value, indent=indent) + "\n")


def write_text_whole(path: Path, text: str) -> None:
    """``text`` in ``path``, whole or not at all: written beside it, then renamed over it; a signal
    or a full disk in the middle of writing leaves the earlier file (or none), never a cut one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_UMASK)          # as an ordinary new file (mkstemp makes it owner-only)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path):
    """A JSON record a command resumes from; a damaged one is a ValueError naming the file and line
    (and what to do), not a traceback."""
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: not JSON ({e.msg}): a damaged record; move it away to make "
                         f"it again") from None
