"""Every option of every command says what it does (and its default, via tupe.cli.HelpFormatter),
and a value of the wrong type names the flag."""

import argparse
import importlib

import pytest

COMMANDS = {"train.py": "tupe.train.trainer", "tupe-validate": "tupe.train.validate",
            "tupe-preprocess": "tupe.preprocess.cli", "tupe-glue": "tupe.cli.glue", "tupe-predict": "tupe.cli.predict",
            "tupe-convert": "tupe.cli.convert", "tupe-report": "tupe.report", "tupe-study": "tupe.study",
            "tupe-demo": "tupe.demo", "tupe-inspect": "tupe.inspection"}


class Captured(Exception):
    pass


def parser_of(module: str, monkeypatch) -> argparse.ArgumentParser:
    """The parser a command's main() builds, caught when it is about to parse."""
    def capture(self, *args, **kwargs):
        raise Captured(self)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    with pytest.raises(Captured) as caught:
        importlib.import_module(module).main([])
    monkeypatch.undo()
    return caught.value.args[0]


def all_parsers(parser, name):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, p in action.choices.items():
                yield from all_parsers(p, f"{name} {sub}")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_has_help_with_its_default(command, monkeypatch):
    from tupe.cli import HelpFormatter

    for name, parser in all_parsers(parser_of(COMMANDS[command], monkeypatch), command):
        assert issubclass(parser.formatter_class, HelpFormatter), name
        lacking = [a.option_strings or a.dest for a in parser._actions
                   if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)) and not (a.help or "").strip()]
        assert not lacking, f"{name}: options without help: {lacking}"
        for action in parser._actions:
            if action.option_strings and action.default not in (None, argparse.SUPPRESS, False, "", []) \
                    and not isinstance(action, argparse._HelpAction):
                shown = HelpFormatter(name)._get_help_string(action)
                assert "default" in shown.lower(), f"{name} {action.option_strings[0]}: default not stated"
        parser.format_help()                                   # renders (every %-format valid)


def test_type_errors_name_the_flag(capsys):
    from tupe.train.options import parse_args

    for argv, words in ((["data", "--max-sentences", "2", "--lr", "abc"], "argument --lr: expected a number"),
                        (["data", "--max-sentences", "x"], "argument --max-sentences/--batch-size: invalid int value: 'x'"),
                        (["data", "--max-sentences", "2", "--adam-betas", "0.9"], "argument --adam-betas: --adam-betas expects")):
        with pytest.raises(SystemExit) as e:
            parse_args(argv)
        assert e.value.code == 2 and words in capsys.readouterr().err



# ----------------------------------------------------------------------------- documented commands
ROOT = importlib.import_module("pathlib").Path(__file__).resolve().parents[1]
# typed stand-ins for the shell variables the docs use (the original command lines)
SHELL_VARS = {"$LR": "1e-5", "$N_CLASSES": "2", "$BATCH_SIZE": "16", "$SEED": "1", "$N_EPOCH": "10",
              "$WARMUP_RATIO": "0.06", "$METRIC": "accuracy", "$MAX_POSITIONS": "512", "$PEAK_LR": "1e-4",
              "$WARMUP_UPDATES": "10000", "$TOTAL_UPDATES": "1000000", "$MAX_SENTENCES": "16", "$UPDATE_FREQ": "16",
              "$DATA_DIR": "data-bin/wiki", "$BERT_MODEL_PATH": "tupe-r/checkpoint.pt", "$SAVE_DIR": "runs/x"}


def documented_commands():
    """(page, command line) of every tupe command (and ``python train.py``) in the README's and
    docs/'s bash blocks, continuation lines joined, one per pipeline stage or ``&&`` part."""
    import re

    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for page in pages:
        for code in re.findall(r"```bash[^\n]*\n(.*?)```", page.read_text(), re.S):
            for line in code.replace("\\\n", " ").splitlines():
                line = line.split(" #")[0] if not line.lstrip().startswith("#") else ""
                for part in re.split(r"\s(?:\||&&)\s", line):
                    words = part.split()
                    if words[:2] == ["python", "train.py"]:
                        words = ["train.py", *words[2:]]
                    if words and (words[0] in COMMANDS or words[0] == "tupe-train"):
                        yield page.name, " ".join(words)


def test_documented_command_lines_parse(monkeypatch):
    """Every command line the README and docs/ show is accepted by its command's own parser (the
    flags exist, with values of their types): a renamed or removed flag fails here, not for a
    reader. (The walkthrough also runs: tests/test_docs.py.)"""
    import shlex

    seen = {}
    for page, line in documented_commands():
        for var, value in SHELL_VARS.items():
            line = line.replace(var, value)
        words = shlex.split(line.replace("...same flags...", ""))
        name = "train.py" if words[0] == "tupe-train" else words[0]
        parser = parser_of(COMMANDS[name], monkeypatch)
        try:
            parser.parse_args(words[1:])
        except SystemExit as e:
            raise AssertionError(f"{page}: `{line}` is refused by {name}'s parser (exit {e.code})") from None
        seen[name] = seen.get(name, 0) + 1
    # the pages document these commands; a regex that stopped finding them would pass silently
    assert {"train.py", "tupe-preprocess", "tupe-glue", "tupe-predict", "tupe-convert", "tupe-validate",
            "tupe-study"} <= set(seen), seen
    assert sum(seen.values()) >= 20, seen
