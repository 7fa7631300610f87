"""Command-line entry points (thin wrappers over the library), and what they share."""

import argparse


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
