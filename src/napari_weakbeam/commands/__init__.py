"""Subcommands of the ``weakbeam`` command line; each module has ``add_parser(subparsers)``."""
