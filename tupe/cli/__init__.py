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
