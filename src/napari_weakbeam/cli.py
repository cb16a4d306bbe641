"""The ``weakbeam`` command line: one subcommand per module in ``napari_weakbeam.commands``.

Each command module defines ``add_parser(subparsers)`` (which registers its parser and sets
``func``) and is imported only when needed, so ``weakbeam --help`` is fast. A user mistake
(:class:`WeakbeamError`, a missing file) prints one line ``error: ...`` and exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .core.errors import WeakbeamError

COMMANDS = ["simulate", "classify", "train", "reconstruct", "compare", "demo", "watch"]


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``error: weakbeam train: ...``), like every other mistake."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="weakbeam",
        description=(
            "Weak-beam / strong-beam classification and 3D dislocation reconstruction for "
            "dark-field X-ray microscopy (DFXM) rocking scans."
        ),
    )
    parser.add_argument("--version", action="version", version=f"napari-weakbeam {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"napari_weakbeam.commands.{name}")
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed in one line
        return exc.code if isinstance(exc.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except WeakbeamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
