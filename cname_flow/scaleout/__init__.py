"""Past one machine: bindings as durable workflows on DBOS Transact over PostgreSQL.

With a PostgreSQL store (``store.url``), ``bind``, ``batch run`` and ``reconcile --apply``
enqueue one workflow per binding on a DBOS queue; ``cname-flow worker`` processes, on any
hosts, run them, each step of the machine a DBOS step, every transition journaled in the same
store. Modules: ``spec`` (what a workflow is given: the binding, never a secret), and the
worker side (DBOS application, workflows, the shared rate limiter, recovery of lapsed
executors).

DBOS Transact: https://docs.dbos.dev/python/reference/ (workflows, steps, queues, schedules).
"""
