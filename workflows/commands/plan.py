"""Write the Pegasus workflow, catalogs and properties of a run, and say how to submit it.

The configuration is validated and the Measurement Set inspected first: a bad configuration
is one line and exit status 2, with nothing written. DIR receives workflow.yml, sites.yml,
transformations.yml, replicas.yml, pegasus.properties, config.yml (the resolved configuration)
and, for an MS directory, inputs/<name>.tar. Then either run it here (htclean run) or plan
and submit it to HTCondor with the printed pegasus-plan line.
"""

from __future__ import annotations

import argparse

HELP = "write the workflow, catalogs and properties; print the pegasus-plan line"
SITES = ("local", "condor", "ospool", "path")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="the configuration file (YAML)")
    parser.add_argument("-o", "--output", metavar="DIR",
                        help="the plan directory (default: output.dir of the configuration)")
    parser.add_argument("--site", choices=SITES,
                        help="where the jobs run (default: execution.site of the configuration)")
    parser.add_argument("--force", action="store_true",
                        help="replace a plan already in DIR (its outputs are deleted)")
    parser.add_argument("--inject-failure", action="append", default=[], metavar="JOB_ID",
                        help="test hook: JOB_ID's pool job (e.g. residual-c02-p001) fails "
                        "whenever the DAGMan submitting it has PEGASUS_HTCLEAN_INJECT_FAILURE=1 "
                        "in its environment (unset it and pegasus-run the rescue DAG)")


def run(args: argparse.Namespace) -> int:
    from htclean.workflows.plan import plan

    result = plan(args.config, args.output, site=args.site, force=args.force,
                  inject=tuple(args.inject_failure))
    print(f"planned run {result.run_id}: {result.parts} part(s), site {result.site}, "
          f"in {result.out_dir}")
    print("plan and submit it with Pegasus:")
    print(f"  {result.command}")
    return 0
