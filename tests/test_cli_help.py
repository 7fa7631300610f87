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

