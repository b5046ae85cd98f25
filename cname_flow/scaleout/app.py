"""A worker process: DBOS over the store's PostgreSQL, the binding queue, the shared limiter,
heartbeats and recovery of dead workers.

* DBOS (https://docs.dbos.dev/python/reference/configuration): the system database is the
  store's database (``store.url``; DBOS keeps its tables in schema ``dbos``, ours are in
  ``cname_flow``); ``application_version`` is ``cname_flow.__version__``, so workers and the
  submitting CLI agree on it (DBOS otherwise hashes the workflow source and dequeues only
  workflows of its own version); ``executor_id`` is stable (``--executor-id``, else
  ``CNAME_FLOW_EXECUTOR_ID``, else the host name), so a restarted worker recovers its own
  pending workflows at launch.
* The queue :data:`~cname_flow.scaleout.spec.BIND_QUEUE` is registered with
  ``worker_concurrency`` = the worker's concurrency (https://docs.dbos.dev/python/reference/queues;
  the queue's settings live in the database, so the last worker to start sets them for all).
* :meth:`Worker.stop` (SIGTERM, SIGINT): stop taking work, give workflows in flight
  ``grace_s`` to end; what is left stays PENDING under this executor id and is recovered by a
  restart or, once this worker is marked stopped, by a survivor (:mod:`recovery`).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg

import cname_flow
from cname_flow import service
from cname_flow.config import Settings
from cname_flow.errors import ConfigError, StepError
from cname_flow.logs import get_logger
from cname_flow.quotas import ApiStats
from cname_flow.scaleout import workflows
from cname_flow.scaleout.limits import SharedRateLimiter
from cname_flow.scaleout.recovery import Heartbeat
from cname_flow.scaleout.spec import BIND_QUEUE
from cname_flow.scaleout.stepper import Stepper, StepStore
from cname_flow.store.pg_conn import mask_url
from cname_flow.workflow.driver import BackoffPolicy

if TYPE_CHECKING:
    from dbos import DBOSConfig

log = get_logger(__name__)

#: The environment variable naming a worker's executor id.
EXECUTOR_ID_ENV = "CNAME_FLOW_EXECUTOR_ID"

#: DBOS's application name for every cname-flow process.
APP_NAME = "cname-flow"


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """How a worker runs.

    Attributes:
        executor_id: stable id of this worker (:func:`executor_id`).
        concurrency: binding workflows this worker runs at once (≥ 1).
        heartbeat_s: seconds between heartbeats.
        lapse_s: seconds without a beat after which another worker recovers this one's work.
        polling_s: seconds between two looks at the queue (DBOS's default is 1).
        grace_s: seconds workflows in flight get to end on a stop.
        reconcile_schedule: a cron expression (DBOS's syntax) for the scheduled reconcile,
            or None (see :func:`register_schedule`).
        reconcile: the schedule's options, keyword arguments of
            ``cname_flow.scaleout.schedule.register`` (``manifest``, ``apply``, ``policy``,
            ``max_changes``, ``force``, ``require_review``...).
    """

    executor_id: str
    concurrency: int = 16
    heartbeat_s: float = 5.0
    lapse_s: float = 30.0
    polling_s: float = 0.2
    grace_s: float = 20.0
    reconcile_schedule: str | None = None
    reconcile: Mapping[str, Any] = field(default_factory=dict)


def executor_id(given: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """The worker's executor id: ``given``, else ``$CNAME_FLOW_EXECUTOR_ID``, else the host name.

    Raises:
        ConfigError: the id is empty or has characters other than letters, digits, ``.-_:``.
    """
    env = os.environ if env is None else env
    value = given or env.get(EXECUTOR_ID_ENV) or socket.gethostname()
    if not value or not all(c.isalnum() or c in ".-_:" for c in value) or len(value) > 128:
        raise ConfigError([f"executor id {value!r}: use 1-128 letters, digits, '.', '-', '_', "
                           f"':' (--executor-id or {EXECUTOR_ID_ENV})"])
    return value


def store_url(settings: Settings) -> str:
    """The store's PostgreSQL URL.

    Raises:
        ConfigError: no ``store.url`` (workers need the PostgreSQL store).
    """
    url = settings.store.url
    if not url:
        raise ConfigError(["store.url: a worker needs the PostgreSQL store: set store.url in "
                           "the config or CNAME_FLOW_STORE_URL "
                           "(postgresql://user@host:5432/database)"],
                          source=str(settings.source or ""))
    return url


def dbos_config(settings: Settings, options: WorkerOptions) -> DBOSConfig:
    """The DBOS configuration of a worker (see the module docstring).

    Raises:
        ConfigError: no ``store.url``.
    """
    from dbos import DBOSConfig

    return DBOSConfig(
        name=APP_NAME, system_database_url=store_url(settings),
        application_version=cname_flow.__version__, executor_id=options.executor_id,
        log_level="WARNING", sys_db_pool_size=max(10, options.concurrency + 4),
        max_executor_threads=max(16, options.concurrency * 2 + 8),
    )


def schedule_module() -> Any | None:
    """:mod:`cname_flow.scaleout.schedule` (the scheduled reconcile), imported so that its
    DBOS workflows are registered before launch (DBOS runs and recovers only workflows it
    knows), or None when this build has no such module."""
    try:
        return importlib.import_module("cname_flow.scaleout.schedule")
    except ModuleNotFoundError as exc:
        if exc.name != "cname_flow.scaleout.schedule":
            raise
        return None


def register_schedule(settings: Settings, options: WorkerOptions, module: Any | None) -> bool:
    """After launch: ``module.register(settings, cron=…, **options.reconcile)``, the scheduled
    reconcile every ``options.reconcile_schedule`` (DBOS cron syntax; every worker may register
    it, DBOS fires one run per slot: https://docs.dbos.dev/python/tutorials/scheduled-workflows).

    Returns:
        Whether a schedule was registered (False without the module or a schedule).

    Raises:
        CnameFlowError: the module refused the cron or the manifest (InputError, ConfigError).
    """
    cron = options.reconcile_schedule
    if cron is None:
        return False
    if module is None:
        log.warning("worker.no_schedule_module", cron=cron)
        return False
    module.register(settings, cron=cron, **dict(options.reconcile))
    return True


class Worker:
    """One worker process's DBOS runtime and helpers; :meth:`start`, then :meth:`stop`.

    Args:
        settings: loaded settings with ``store.url``.
        options: see :class:`WorkerOptions`.
        env: environment for credential references (default ``os.environ``).
        store: an open store of record to use instead of :func:`service.open_store`'s (tests).
    """

    def __init__(self, settings: Settings, options: WorkerOptions, *,
                 env: Mapping[str, str] | None = None, store: StepStore | None = None) -> None:
        self.settings, self.options, self.env = settings, options, env
        self.url = store_url(settings)
        self.stats = ApiStats()
        self.limiter = SharedRateLimiter(self.url, settings.batch.rate_limits, self.stats)
        self.heartbeat = Heartbeat(self.url, options.executor_id, cname_flow.__version__,
                                   heartbeat_s=options.heartbeat_s, lapse_s=options.lapse_s)
        self._store = store
        self._stack = contextlib.ExitStack()
        self._launched = False

    def start(self) -> None:
        """Open the store, build the clients, launch DBOS, register the queue, start beating.

        Raises:
            ConfigError: credentials or settings unusable.
            StepError: retryable; the database is unreachable (exit 75).
        """
        from dbos import DBOS

        try:
            self.limiter.prepare()
        except psycopg.OperationalError as exc:
            raise StepError(f"the store's database at {mask_url(self.url)} is unreachable "
                            f"({type(exc).__name__})", retryable=True,
                            hint="check that PostgreSQL is up and store.url is right") from None
        self._stack.callback(self.limiter.close)
        clients = service.Clients.from_settings(self.settings, self.env,
                                                rate_limiter=self.limiter,
                                                on_error=self.stats.count_error)
        store = self._store
        if store is None:
            store = self._stack.enter_context(service.open_store(self.settings))
        workflows.install(Stepper(clients, store, backoff=BackoffPolicy(),
                                  lock_wait_s=min(1.0, self.settings.journal.lock_wait_s)))
        schedule = schedule_module()
        if schedule is not None and hasattr(schedule, "use_settings"):
            schedule.use_settings(self.settings)  # scheduled passes here use these settings
        started = time.monotonic()
        DBOS(config=dbos_config(self.settings, self.options))
        DBOS.launch()
        self._launched = True
        DBOS.register_queue(BIND_QUEUE, worker_concurrency=self.options.concurrency,
                            polling_interval_sec=self.options.polling_s,
                            on_conflict="always_update")
        register_schedule(self.settings, self.options, schedule)
        self.heartbeat.start()
        log.warning("worker.started", executor=self.options.executor_id, queue=BIND_QUEUE,
                    concurrency=self.options.concurrency, store=mask_url(self.url),
                    version=cname_flow.__version__,
                    launch_s=round(time.monotonic() - started, 2))

    def stop(self, *, graceful: bool = True) -> None:
        """Stop taking work, give workflows in flight ``grace_s``, then release everything."""
        from dbos import DBOS

        if self._launched:  # beats go on meanwhile: nobody recovers what is finishing here
            DBOS.destroy(workflow_completion_timeout_sec=int(self.options.grace_s)
                         if graceful else 0)
            self._launched = False
        self.heartbeat.stop(graceful=graceful)
        self._stack.close()
        log.warning("worker.stopped", executor=self.options.executor_id,
                    api=self.stats.to_json())
