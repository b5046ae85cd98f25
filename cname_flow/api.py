"""The library: :func:`bind`, :func:`unbind`, :func:`plan`, :func:`status`, :func:`run_batch`,
and their async twins (README, "Use it as a library").

Each function takes plain values, loads the settings (``config``: a :class:`Settings`, a YAML path,
or ``None`` for ``$CNAME_FLOW_CONFIG`` or the defaults, as the CLI does), builds the real SDK
clients and calls the entry point the CLI command of the same name calls, in
:mod:`cname_flow.service`, :mod:`cname_flow.workflow.plan` and :mod:`cname_flow.batch.jobs`. It
returns that entry point's result (:class:`BindingRecord`, :class:`Plan`, :class:`JobResult`)
and raises the project's errors (:mod:`cname_flow.errors`: :class:`InputError` /
:class:`ConfigError` for bad input before anything is touched, :class:`Locked` when another
process drives the same state, a :class:`StepError` subclass when a step fails). Nothing here
prints, exits or configures logging (:mod:`cname_flow.logs`).

Async twins (``bind_async``, ...) run the sync function in a worker thread with
:func:`asyncio.to_thread`, so awaiting one never blocks the caller's event loop (a FastAPI
handler, ``asyncio.run``). There is no async core to await instead: the workflow's steps call the
synchronous Alibaba Cloud SDKs, and the batch engine, the one async part, owns its loop
(``uvloop`` when installed, thousands of propagation polls on it) and spends milliseconds of CPU
per binding that must not run on the host's loop. Cancelling the awaiting task does not stop the
thread: the call runs to its end and its state is journaled (a later call resumes it).

Every call uses the store of record (:mod:`cname_flow.store`) that the CLI, batch jobs and
reconcile share, with its per-binding locks: calls on different domains run side by side (threads
of one process and other processes alike), and a call on a binding another caller drives waits up
to ``journal.lock_wait_s``, then raises :class:`~cname_flow.errors.Locked` naming the holder.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypedDict, Unpack

from cname_flow import service
from cname_flow.batch import jobs
from cname_flow.batch.jobs import JobResult
from cname_flow.config import Settings, load_settings
from cname_flow.journal import BindingRecord
from cname_flow.model import Binding, BindingOptions, CertificateSpec, normalize_domain
from cname_flow.workflow.plan import Plan, plan_binding

#: Environment variable naming the config file when ``config`` is None (the CLI's ``--config``).
CONFIG_ENV = "CNAME_FLOW_CONFIG"

#: What ``config`` accepts: loaded settings, a YAML file, or None (``$CNAME_FLOW_CONFIG`` if set,
#: else the defaults plus ``CNAME_FLOW__*`` overrides).
Config = Settings | Path | str | None


class BindingArgs(TypedDict, total=False):
    """The keyword arguments of :func:`bind` and :func:`plan` (and their twins)."""

    bucket: str | None
    region: str | None
    config: Config
    env: Mapping[str, str] | None
    route: bool
    route_target: str | None
    remove_txt: bool
    cert_file: Path | str | None
    key_file: Path | str | None
    cert_id: str | None
    force_cert: bool


class UnbindArgs(TypedDict, total=False):
    """The keyword arguments of :func:`unbind` (and :func:`unbind_async`)."""

    bucket: str | None
    config: Config
    env: Mapping[str, str] | None


class StatusArgs(TypedDict, total=False):
    """The keyword arguments of :func:`status` (and :func:`status_async`)."""

    config: Config
    env: Mapping[str, str] | None


class BatchArgs(TypedDict, total=False):
    """The keyword arguments of :func:`run_batch` (and :func:`run_batch_async`)."""

    config: Config
    env: Mapping[str, str] | None
    job_id: str | None
    concurrency: int | None
    bucket: str | None
    region: str | None
    on_change: Callable[[str, str], None] | None


def load(config: Config = None, env: Mapping[str, str] | None = None) -> Settings:
    """The settings ``config`` names (see :data:`Config`), loaded once per call.

    Args:
        config: settings (returned as they are), a YAML path, or None.
        env: environment for ``$CNAME_FLOW_CONFIG`` and ``CNAME_FLOW__*`` overrides (default
            ``os.environ``).

    Raises:
        ConfigError: the file cannot be read or does not validate; every problem with its
            ``file:line``.
    """
    if isinstance(config, Settings):
        return config
    environ = os.environ if env is None else env
    path = config if config is not None else environ.get(CONFIG_ENV) or None
    return load_settings(Path(path) if path is not None else None, env=environ)


def make_binding(
    settings: Settings, domain: str, *, bucket: str | None = None, region: str | None = None,
    route: bool = False, route_target: str | None = None, remove_txt: bool = False,
    cert_file: Path | str | None = None, key_file: Path | str | None = None,
    cert_id: str | None = None, force_cert: bool = False,
) -> Binding:
    """A validated :class:`Binding` from plain values and the settings' defaults (the options
    of ``cname-flow bind``; README, "Commands").

    Raises:
        InputError: bad domain name, no bucket (neither ``bucket`` nor ``defaults.bucket``), or
            half a certificate (a ``cert_file`` without ``key_file`` or the reverse).
    """
    certificate = None
    if cert_file or key_file or cert_id:
        certificate = CertificateSpec(cert_file=Path(cert_file) if cert_file else None,
                                      key_file=Path(key_file) if key_file else None,
                                      cert_id=cert_id)
    options = BindingOptions(route=route, remove_txt=remove_txt, force_cert=force_cert,
                             route_target=route_target or settings.defaults.route_target)
    return service.make_binding(settings, domain, bucket=bucket, region=region,
                                options=options, certificate=certificate)


def _records(settings: Settings) -> dict[str, BindingRecord]:
    """Every binding in the store of record, whatever made it; none before the first bind."""
    return dict(service.read_bindings(settings))


# -- the sync API --------------------------------------------------------------------------------

def bind(
    domain: str, *, bucket: str | None = None, region: str | None = None, config: Config = None,
    env: Mapping[str, str] | None = None, route: bool = False, route_target: str | None = None,
    remove_txt: bool = False, cert_file: Path | str | None = None,
    key_file: Path | str | None = None, cert_id: str | None = None, force_cert: bool = False,
) -> BindingRecord:
    """Bind ``domain`` to a bucket and return when it is BOUND, as ``cname-flow bind`` does.

    CreateCnameToken, the ``_dnsauth`` TXT record, propagation at every authoritative
    nameserver, PutCname, ListCname verification (README, "How a binding flows"); resumes from
    the journal, so calling it again after a failure or a crash continues where it stopped.

    Args:
        domain: the custom domain (Unicode or A-label).
        bucket: the OSS bucket (default ``defaults.bucket``); region: its region (default: the
            bucket's own, learned with GetBucketInfo; a contradicting one is refused).
        config: settings or a YAML path (see :data:`Config`); env: the environment for
            credential references and overrides (default ``os.environ``).
        route: also upsert ``<domain> CNAME <route_target>`` (default target
            ``<bucket>.oss-<region>.aliyuncs.com``); remove_txt: delete the TXT record once bound.
        cert_file, key_file: a PEM chain (leaf first) and its key to attach; or cert_id: a CAS
            certificate id with its region suffix (``"4930000-cn-hangzhou"``); force_cert:
            overwrite a bound certificate (PutCname ``Force``) instead of compare-and-swap.

    Returns:
        The binding's journaled :class:`BindingRecord`: ``key`` (``"<bucket>/<domain>"``),
        ``phase`` (``Phase.BOUND``), ``region``, ``token`` / ``token_expires_at`` (aware UTC),
        ``txt_record_id``, ``cname_status`` (``"Enabled"``), ``cert_id`` / ``fingerprint`` when
        a certificate is attached, ``started_at`` / ``updated_at``.

    Raises:
        InputError, ConfigError, CertificateError: bad input; nothing was touched.
        Locked: another process holds the bind journal.
        StepError: the failing step's error (``.retryable``, ``.code``, ``.request_id``); a
            retryable one means calling again later can succeed.
    """
    settings = load(config, env)
    binding = make_binding(settings, domain, bucket=bucket, region=region, route=route,
                           route_target=route_target, remove_txt=remove_txt, cert_file=cert_file,
                           key_file=key_file, cert_id=cert_id, force_cert=force_cert)
    clients = service.Clients.from_settings(settings, env)
    with service.open_store(settings) as store:
        return service.bind(clients, binding, store)


def plan(
    domain: str, *, bucket: str | None = None, region: str | None = None, config: Config = None,
    env: Mapping[str, str] | None = None, route: bool = False, route_target: str | None = None,
    remove_txt: bool = False, cert_file: Path | str | None = None,
    key_file: Path | str | None = None, cert_id: str | None = None, force_cert: bool = False,
) -> Plan:
    """What :func:`bind` would do for ``domain`` and why, without changing anything.

    Calls only read APIs (ListCname, GetCnameToken, DescribeDomains, DescribeSubDomainRecords);
    the arguments are :func:`bind`'s.

    Returns:
        A :class:`Plan`: ``binding`` (``"<bucket>/<domain>"``), ``actions`` (each ``step``,
        ``action``, ``reason``), ``changes`` (how many would change remote state), ``blocked``
        (why it cannot run at all, e.g. no hosted zone, or None); ``to_json()`` for JSON.

    Raises:
        InputError, ConfigError, CertificateError: bad input.
    """
    settings = load(config, env)
    binding = make_binding(settings, domain, bucket=bucket, region=region, route=route,
                           route_target=route_target, remove_txt=remove_txt, cert_file=cert_file,
                           key_file=key_file, cert_id=cert_id, force_cert=force_cert)
    ctx = service.step_context(service.Clients.from_settings(settings, env), binding)
    return plan_binding(ctx, _records(settings).get(binding.key))


def unbind(domain: str, *, bucket: str | None = None, config: Config = None,
           env: Mapping[str, str] | None = None) -> list[str]:
    """Unbind ``domain`` (DeleteCname), then delete the DNS records cname-flow created for it,
    as ``cname-flow unbind`` does (never a record by name alone).

    Returns:
        One sentence per action taken, e.g. ``"DeleteCname a.example.com on examplebucket"``.

    Raises:
        InputError, ConfigError: bad input (a name whose normalisation removes or maps
            characters the user cannot see is refused, as the CLI refuses it); Locked:
            another process holds the binding; RemoteError: an API call failed.
    """
    settings = load(config, env)
    binding = service.make_binding(settings, domain, bucket=bucket, destructive=True)
    clients = service.Clients.from_settings(settings, env)
    with service.open_store(settings) as store:
        return service.unbind(clients, binding, store)


def status(domain: str | None = None, *, config: Config = None,
           env: Mapping[str, str] | None = None) -> list[BindingRecord]:
    """Each binding's journaled state, as ``cname-flow status`` shows it (no API call).

    Args:
        domain: only this domain's bindings (on any bucket); None for all.

    Returns:
        One :class:`BindingRecord` per binding (``key``, ``phase``, ``last_step``,
        ``last_status``, ``token_expires_at``, ``last_error``, ``updated_at``...), in journal
        order; empty before the first bind.

    Raises:
        InputError: bad domain name; ConfigError: bad settings; JournalCorrupt: unreadable journal.
    """
    settings = load(config, env)
    wanted = normalize_domain(domain) if domain is not None else None
    return [r for r in _records(settings).values() if wanted is None or r.domain == wanted]


def run_batch(manifest: Path | str, *, config: Config = None,
              env: Mapping[str, str] | None = None, job_id: str | None = None,
              concurrency: int | None = None, bucket: str | None = None,
              region: str | None = None,
              on_change: Callable[[str, str], None] | None = None) -> JobResult:
    """Bind every domain of a manifest at the documented rate limits, as ``cname-flow batch run``
    does (README, "Batch jobs"); ``job_id`` of an existing job continues it.

    Works from any thread, and also where an event loop is running in this thread (a notebook):
    then the job runs in a helper thread while this call blocks (use :func:`run_batch_async` to
    keep the loop running). SIGINT/SIGTERM stop the job gracefully (``interrupted`` set) only
    when it runs in the main thread.

    Args:
        manifest: YAML or CSV manifest (README, "Manifests").
        bucket, region: fallbacks for entries that name none; concurrency: worker threads
            (default ``batch.concurrency``); on_change: called with (binding key, phase) on
            every journaled transition, from the job's thread.

    Returns:
        A :class:`JobResult`: ``job_id``, ``records`` (one per manifest entry, in order),
        ``counts`` (bindings per outcome ``bound|failed|retryable|pending``), ``exit_status``
        (``ok|failed|retryable|interrupted``), ``elapsed_s`` (seconds), API ``stats``.

    Raises:
        ConfigError: the manifest (every problem with its line) or the credentials; nothing ran.
        Locked: another process drives this job.
    """
    settings = load(config, env)

    def job() -> JobResult:
        return jobs.run_job(settings, Path(manifest), job_id=job_id, concurrency=concurrency,
                            bucket=bucket, region=region, env=env, on_change=on_change)

    if not _loop_running():
        return job()
    with ThreadPoolExecutor(1, thread_name_prefix="cname-flow-batch") as pool:
        return pool.submit(job).result()


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


# -- the async twins -----------------------------------------------------------------------------

async def bind_async(domain: str, **kwargs: Unpack[BindingArgs]) -> BindingRecord:
    """:func:`bind` in a worker thread (same arguments, result and errors); the loop runs on."""
    return await asyncio.to_thread(bind, domain, **kwargs)


async def plan_async(domain: str, **kwargs: Unpack[BindingArgs]) -> Plan:
    """:func:`plan` in a worker thread (same arguments, result and errors)."""
    return await asyncio.to_thread(plan, domain, **kwargs)


async def unbind_async(domain: str, **kwargs: Unpack[UnbindArgs]) -> list[str]:
    """:func:`unbind` in a worker thread (same arguments, result and errors)."""
    return await asyncio.to_thread(unbind, domain, **kwargs)


async def status_async(domain: str | None = None,
                       **kwargs: Unpack[StatusArgs]) -> list[BindingRecord]:
    """:func:`status` in a worker thread (same arguments, result and errors)."""
    return await asyncio.to_thread(status, domain, **kwargs)


async def run_batch_async(manifest: Path | str, **kwargs: Unpack[BatchArgs]) -> JobResult:
    """:func:`run_batch` in a worker thread (same arguments, result and errors): the job's own
    loop runs there, so the caller's loop keeps serving; no signal handler is installed."""
    return await asyncio.to_thread(run_batch, manifest, **kwargs)
