"""htclean.engine: the embedded workflow engine that runs htclean's Pegasus YAML on one machine.

It reads the same workflow, transformation and replica catalogs that `htclean plan --site local`
writes, runs the jobs in dependency order on a bounded pool, honours retries and throttles,
plans sub-workflows when they are reached and resumes a stopped run (see runner.run_workflow).
"""
