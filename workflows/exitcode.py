"""The DAGMan POST script of htclean's pool plans: Pegasus's own exit-code check, then exit
status 2 when the job itself exited 2 (bad input), so that DAGMan's
``RETRY <job> N UNLESS-EXIT 2`` does not retry what a retry cannot fix.

Why a wrapper: DAGMan compares UNLESS-EXIT with the node's result, which is the POST script's
exit status when the node has one, and Pegasus gives every job ``pegasus-exitcode`` as its
POST script, which exits 0 or 1 only. The planner lets a plan name another path for that
script type (the property ``dagman.post.path.pegasus-exitcode``, checked on Pegasus 6.0-dev):
the wrapper runs pegasus-exitcode with the arguments Pegasus wrote, so monitoring, the job's
logs and integrity metadata are Pegasus's as before.

The job's own exit status: ``-r $RETURN`` when HTCondor saw the job end; else (with condorio
a job that fails without its declared outputs is held for the failed output transfer, then
removed, and $RETURN says nothing) PegasusLite's last ``PegasusLite: exitcode N`` line in the
job's stderr (``<job>.err`` beside the ``<job>.out`` that is the last argument), which
HTCondor brings back even then (measured on the test pool, HTCondor 25.14).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

NAME = "htclean-exitcode"
NO_RETRY_STATUS = 2

_SCRIPT = """#!/bin/sh
# htclean's DAGMan POST script, written by htclean plan (see htclean.workflows.exitcode).
# pegasus-exitcode decides whether the job succeeded; when it failed and the job itself
# exited {status} (bad input), exit {status}: "RETRY <job> N UNLESS-EXIT {status}" then stops.
exitcode="{pegasus_exitcode}"
if [ -z "$exitcode" ] || [ ! -x "$exitcode" ]; then
    exitcode=$(command -v pegasus-exitcode) || {{
        echo "{name}: pegasus-exitcode is not on PATH" >&2; exit 1; }}
fi
job_status=""
previous=""
out=""
for arg in "$@"; do
    [ "$previous" = "-r" ] && job_status=$arg
    previous=$arg
    out=$arg
done
lite=""
err="${{out%.out}}.err"
if [ -f "$err" ]; then
    lite=$(awk '/^PegasusLite: exitcode /{{v=$3}} END{{print v}}' "$err")
fi
"$exitcode" "$@"
rc=$?
if [ "$rc" -ne 0 ] && {{ [ "$job_status" = "{status}" ] || [ "$lite" = "{status}" ]; }}; then
    exit {status}
fi
exit "$rc"
"""


def path(out_dir: Path) -> Path:
    """Where a plan directory keeps the POST script."""
    return Path(out_dir) / "bin" / NAME


def write(where: Path) -> Path:
    """Write the POST script into the plan directory being built at ``where`` (executable);
    pegasus-exitcode is named by the absolute path found on PATH now, else looked up when
    the script runs."""
    target = path(where)
    target.parent.mkdir(parents=True, exist_ok=True)
    found = shutil.which("pegasus-exitcode") or ""
    target.write_text(_SCRIPT.format(status=NO_RETRY_STATUS, name=NAME, pegasus_exitcode=found))
    os.chmod(target, 0o755)
    return target
