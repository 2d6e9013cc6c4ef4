"""Per-job-type statistics and a concurrency plot of a run.

DIR is a local run (htclean run's directory: its engine record and the jobs' records in
DIR/outputs) or a Pegasus submit directory (its stampede database; --records names the
output directory that holds the jobs' *.record.json files for bytes, visibilities and
device). Prints the table; writes DIR/report/report.json and DIR/report/report.png.
"""

from __future__ import annotations

import argparse

HELP = "concurrency plot and per-job-type statistics of a local run or a Pegasus submit dir"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", metavar="DIR", help="a local run directory or a submit directory")
    parser.add_argument("--records", metavar="OUTPUTS",
                        help="(submit directory) where the jobs' *.record.json files are")
    parser.add_argument("-o", "--output", metavar="REPORT_DIR",
                        help="where to write report.json and report.png (default DIR/report)")


def run(args: argparse.Namespace) -> int:
    from htclean.workflows.report import build_report, format_table

    report = build_report(args.dir, records_dir=args.records, out_dir=args.output)
    print(format_table(report))
    print(f"plot: {report['plot']}")
    return 0
