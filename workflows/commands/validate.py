"""Check a configuration file: one line per problem, exit status 2 if there is any."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "check a configuration; one line per problem"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="the configuration file (YAML)")


def run(args: argparse.Namespace) -> int:
    from htclean.workflows import config

    raw = config.read_yaml(args.config)
    errors = config.validate(raw, Path(args.config).resolve().parent)
    for error in errors:
        print(f"{args.config}: {error}", file=sys.stderr)
    if errors:
        return 2
    print(f"{args.config}: valid")
    return 0
