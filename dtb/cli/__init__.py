"""The ``dtb`` command line: one module per command family, the common options in
:mod:`dtb.cli.common`; the work itself is done by the library (dtb.runs, assimilation, bridges,
atlas, cluster)."""

from __future__ import annotations

import sys

from dtb.cli import assimilation, atlas, bridges, cluster, run
from dtb.cli.common import EXIT_USER_ERROR, Parser, is_rank0
from dtb.errors import DtbError


def build_parser() -> Parser:
    parser = Parser(prog="dtb", description="Digital twin brain: distributed spiking network simulation.")
    parser.add_argument("--version", action="version", version=f"dtb {__import__('dtb').__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    run.add_parsers(sub)
    atlas.add_parsers(sub)
    cluster.add_parsers(sub)
    assimilation.add_parsers(sub)
    bridges.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DtbError as e:
        if is_rank0():
            print(f"dtb: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("dtb: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:          # output piped into head & co.
        sys.stderr.close()
        return 0
