"""The ``htclean`` command: one entry point, one module per subcommand in ``commands/``.

Each subcommand module defines ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``. Heavy modules are imported inside ``run``, so ``htclean --help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import PackageNotFoundError, version

from htclean.imaging.errors import InputError

# Subcommands in the order --help lists them; a name appears here only once it works.
COMMANDS = ("demo", "simulate", "inspect", "init-config", "validate", "plan", "run", "report",
            "model")


def _version() -> str:
    try:
        return version("htclean")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="htclean",
        description="CLEAN imaging of radio interferometric data as Pegasus workflows "
        "(HTCondor, OSPool, PATH) or on this machine.",
    )
    parser.add_argument("--version", action="version", version=f"htclean {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"htclean.workflows.commands.{name.replace('-', '_')}")
        doc = (module.__doc__ or module.HELP).strip()
        p = sub.add_parser(name, help=module.HELP, description=doc,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except InputError as exc:
        print(f"htclean {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (OSError, MemoryError) as exc:
        from htclean.executables.outcome import EXIT_RESOURCES, classify

        status, line = classify(exc)
        if status != EXIT_RESOURCES:
            raise
        print(f"htclean {args.command}: error: {line}", file=sys.stderr)
        return status
    except KeyboardInterrupt:
        print(f"htclean {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
