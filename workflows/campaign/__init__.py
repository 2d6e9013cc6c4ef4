"""The campaign model: how long a run takes on a pool, and where its time goes.

A discrete-event simulation of the job graph (htclean's own, built by its planner, or an
HTClean-style one) as HTCondor and DAGMan run it: negotiation cycles, queue waits, transfers,
the jobs' measured costs, Pegasus's per-level jobs. ``htclean model CONFIG --pool FILE``.
"""
