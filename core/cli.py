"""The headless CLI (``python -m core …``): parse → one command → one JSON object.

A public interface: names and JSON keys follow ``cli-contract.md``.  The parser is assembled
from the command registry (:mod:`core.commands`); this module only applies the contract: one
JSON object on stdout (also written to ``--out FILE``), user errors as one ``error: …`` line on
stderr with exit status 2, a bug as ``error: internal …`` with exit status 1.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import traceback
from typing import Sequence

import numpy as np

from .commands import REGISTRY, command
from .errors import UserError, cli_spelling

EXIT_USER_ERROR = 2


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the contract's error line: ``error: …`` and exit status 2."""

    def error(self, message: str):  # noqa: D102 - argparse hook
        raise UserError(f"{message} (see '{self.prog} --help')")


def _json_safe(obj):
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, np.ndarray):
        return _json_safe(obj.tolist())
    return obj


def emit(result: dict, out: str | None = None) -> None:
    """Print ``result`` as one JSON object (NaN → null), and write it to ``out`` when given."""
    text = json.dumps(_json_safe(result), allow_nan=False)
    if out:
        try:
            with open(out, "w", encoding="utf-8") as handle:
                handle.write(text + "\n")
        except OSError as exc:
            raise UserError(f"--out '{out}' cannot be written: {exc.strerror}") from exc
    sys.stdout.write(text + "\n")


def build_parser(argv: Sequence[str] | None = None) -> ArgumentParser:
    """The parser of the commands in :data:`core.commands.REGISTRY`; the options of the one
    ``argv`` names (every one when ``argv`` is None), so a command loads only what it uses."""
    parser = ArgumentParser(
        prog="python -m core",
        description="Uplift Studio, headless: every number the app shows, reproducible from a terminal. "
        "Each command prints one JSON object on stdout.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    chosen = None if argv is None else next((a for a in argv if not a.startswith("-")), "")
    for name, help_text in REGISTRY.items():
        p = sub.add_parser(name, help=help_text)
        if chosen is None or name == chosen:
            module = command(name)
            module.add_arguments(p)
            p.set_defaults(handler=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "command", None):
            parser.print_help(sys.stderr)
            raise UserError("no command given; choose one of: " + ", ".join(REGISTRY))
        result = args.handler(args)
        emit(result, getattr(args, "json_out", None))
        return 0
    except UserError as exc:
        sys.stderr.write(f"error: {exc.spelled(cli_spelling)}\n")
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130
    except Exception as exc:  # a bug, not a user error: say so, keep the traceback on request
        if os.environ.get("UPLIFT_STUDIO_DEBUG"):
            traceback.print_exc()
        sys.stderr.write(f"error: internal failure ({type(exc).__name__}: {exc}); set UPLIFT_STUDIO_DEBUG=1 for the traceback\n")
        return 1
