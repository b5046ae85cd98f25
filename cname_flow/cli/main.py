"""The command-line interface: parse, build objects from Settings, call one library entry, render.

Exit codes (the one table, :class:`~cname_flow.cli.common.Outcome`) and error rendering live in
:mod:`cname_flow.cli.common`; batch jobs and reconciliation live in :mod:`cname_flow.cli.batch` and
:mod:`cname_flow.cli.reconcile`, mounted here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from cname_flow import api, certificates, service
from cname_flow.cli import log, render
from cname_flow.cli.batch import batch
from cname_flow.cli.common import CliState, check_no_wait, guarded, no_wait_option
from cname_flow.cli.doctor import doctor
from cname_flow.cli.reconcile import reconcile
from cname_flow.cli.store import store
from cname_flow.cli.worker import worker
from cname_flow.errors import InputError
from cname_flow.journal import BindingRecord
from cname_flow.model import Binding, normalize_domain
from cname_flow.scaleout import routing
from cname_flow.workflow.plan import plan_binding

#: Commands that set up logging themselves (the demo always logs to the console).
OWN_LOGGING = frozenset({"demo"})


@click.group()
@click.option("--config", "config", type=click.Path(path_type=Path, dir_okay=False),
              envvar="CNAME_FLOW_CONFIG", help="cname-flow config file (YAML).")
@click.option("--verbose", "-v", is_flag=True, help="Log debug events too.")
@click.option("--json-logs/--console-logs", default=None,
              help="Log format (default: console on a terminal, JSON otherwise).")
@click.version_option(package_name="cname-flow")
@click.pass_context
def main(ctx: click.Context, config: Path | None, verbose: bool, json_logs: bool | None) -> None:
    """Bind custom domains to Alibaba Cloud OSS buckets, resumably."""
    if ctx.invoked_subcommand not in OWN_LOGGING:
        log.configure(json_logs=json_logs, verbose=verbose)
    ctx.ensure_object(CliState).config_path = config  # an object given by a test is kept


def binding_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by bind and plan."""
    for opt in reversed([
        click.argument("domain"),
        click.option("--bucket", help="OSS bucket (default: defaults.bucket)."),
        click.option("--region", help="OSS region of the bucket; refused unless it is the"
                     " bucket's (default: the bucket's own, asked of OSS)."),
        click.option("--route", is_flag=True, help="Also upsert <domain> CNAME <bucket endpoint>."),
        click.option("--route-target", help="CNAME target for --route."),
        click.option("--remove-txt", is_flag=True, help="Delete our _dnsauth record once bound."),
        click.option("--cert-file", type=click.Path(path_type=Path), help="PEM chain, leaf first."),
        click.option("--key-file", type=click.Path(path_type=Path), help="PEM private key."),
        click.option("--cert-id", help="CAS certificate id, region suffixed: 4930000-cn-hangzhou."),
        click.option("--force-cert", is_flag=True, help="Overwrite the bound certificate (Force)."),
        click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout."),
    ]):
        fn = opt(fn)
    return fn


def _binding(obj: CliState, kw: dict[str, Any]) -> Binding:
    return api.make_binding(
        obj.settings, kw["domain"], bucket=kw["bucket"], region=kw["region"], route=kw["route"],
        route_target=kw["route_target"], remove_txt=kw["remove_txt"], cert_file=kw["cert_file"],
        key_file=kw["key_file"], cert_id=kw["cert_id"], force_cert=kw["force_cert"])


@main.command()
@binding_options
@click.option("--dry-run", is_flag=True, help="Only show the plan; change nothing.")
@no_wait_option
@click.pass_obj
@guarded
def bind(obj: CliState, dry_run: bool, no_wait: bool, **kw: Any) -> None:
    """Bind DOMAIN to a bucket: token, TXT, propagation, PutCname, verification (resumable).

    With store.url set, the binding is submitted to the workers as a job of one and followed
    (same output and exit code); --no-wait prints the job id and returns.
    """
    if dry_run:
        return _plan(obj, kw)
    check_no_wait(obj.settings, no_wait)
    binding = _binding(obj, kw)
    clients = obj.clients()
    human = sys.stderr.isatty() and not kw["as_json"]
    if routing.worker_mode(obj.settings):
        record = _bind_on_workers(obj, clients, binding, no_wait=no_wait, human=human)
        if record is None:
            return None
    else:
        with service.open_store(obj.settings) as store, \
                render.propagation_progress(human) as on_round:
            record = service.bind(
                clients, binding, store, on_round=on_round,
                on_step=render.StepPrinter(render.err_console()) if human else None)
    if kw["as_json"]:
        render.emit_json(render.record_json(record))
        return None
    out = render.console()
    out.print(f"[green]bound[/green] {binding.domain} → {binding.bucket}")
    out.print(render.cname_table(binding.bucket, service.bucket_listing(clients, binding.bucket)))
    return None


def _bind_on_workers(obj: CliState, clients: service.Clients, binding: Binding, *,
                     no_wait: bool, human: bool) -> BindingRecord | None:
    """Submit ``binding`` as a job of one; None with ``no_wait`` (the job id is printed), else
    its record once BOUND.

    Raises:
        CnameFlowError: the failing step's error, as a local bind raises it.
        Interrupted: Ctrl-C stopped the following (the job goes on in the workers).
    """
    submitted = routing.submit_binding(obj.settings, clients, binding)
    job_id = submitted.job_id
    if no_wait:
        click.echo(job_id)
        click.echo(f"submitted to the workers; follow with:\n  cname-flow batch status "
                   f"{job_id} --follow", err=True)
        return None
    err = render.err_console()
    result = routing.follow_job(
        obj.settings, job_id, baseline=submitted.baseline,
        on_change=(lambda key, phase: err.print(f"{key}: {phase}")) if human else None)
    if result.interrupted is not None:
        raise routing.following_stopped(job_id)
    record = result.records[0] if result.records else None
    error = routing.failure_of(record, binding.key)
    if error is not None:
        raise error
    assert record is not None
    return record


@main.command()
@binding_options
@click.pass_obj
@guarded
def plan(obj: CliState, **kw: Any) -> None:
    """Show what `bind` would do for DOMAIN and why (read-only)."""
    _plan(obj, kw)


def _plan(obj: CliState, kw: dict[str, Any]) -> None:
    binding = _binding(obj, kw)
    ctx = service.step_context(obj.clients(), binding)
    record = service.read_bindings(obj.settings).get(binding.key)
    result = plan_binding(ctx, record)
    if kw["as_json"]:
        render.emit_json(result.to_json())
    else:
        render.console().print(render.plan_table(result))


@main.command()
@click.argument("domain")
@click.option("--bucket", help="OSS bucket (default: defaults.bucket).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@guarded
def unbind(obj: CliState, domain: str, bucket: str | None, as_json: bool) -> None:
    """Unbind DOMAIN (DeleteCname), then delete the DNS records cname-flow created for it.

    A domain never bound (unknown to the store, not on the bucket) is left alone: nothing is
    written.
    """
    binding = service.make_binding(obj.settings, domain, bucket=bucket, destructive=True)
    clients = obj.clients()
    with service.open_store(obj.settings) as store:
        done = service.unbind(clients, binding, store)
    if as_json:
        render.emit_json({"binding": binding.key, "done": done, "unbound": bool(done)})
        return
    out = render.console()
    if not done:
        out.print(f"nothing to unbind: {binding.domain} was never bound to {binding.bucket} "
                  "(not in the store, not in ListCname); nothing was written")
    for line in done:
        out.print(line)


@main.command()
@click.argument("domain", required=False)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@guarded
def status(obj: CliState, domain: str | None, as_json: bool) -> None:
    """Show each binding's phase, timestamps, token expiry and last error, whatever made it
    (bind, batch, reconcile: the store of record). A fresh machine lists nothing."""
    records = [r for r in service.read_bindings(obj.settings).values()
               if domain is None or r.domain == normalize_domain(domain)]
    if as_json:
        render.emit_json([render.record_json(r) for r in records])
    else:
        render.console().print(render.status_table(records))


@main.command()
@click.option("--workflow", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              default=None, help="Manifest to bind (default: the demo.yaml in the package).")
@click.option("--lag", type=float, default=2.0, show_default=True,
              help="Propagation lag of the second nameserver, seconds.")
@click.option("--verbose", "-v", is_flag=True, help="Show every log event too.")
@guarded
def demo(workflow: Path | None, lag: float, verbose: bool) -> None:
    """Start the sandbox in-process and bind the demo domains, showing each step."""
    from cname_flow.cli.demo import run_demo

    # The one log set-up of this command: the group skips it (OWN_LOGGING).
    log.configure(json_logs=False, level="info" if verbose else "warning")
    run_demo(workflow, lag=lag, console=render.console())


@main.group()
def sandbox() -> None:
    """The local Alibaba Cloud (OSS CNAME API, Alidns API, authoritative DNS)."""


@sandbox.command("serve")
@click.option("--config", "sandbox_config", type=click.Path(path_type=Path, exists=True),
              help="Sandbox config (YAML); default: the built-in world.")
@click.option("--state", type=click.Path(path_type=Path), help="Persist state to this file.")
@click.option("--info-file", type=click.Path(path_type=Path), help="Write endpoints as JSON here.")
@click.option("--write-config", type=click.Path(path_type=Path),
              help="Write a cname-flow config pointing at the sandbox here.")
@guarded
def sandbox_serve(sandbox_config: Path | None, state: Path | None, info_file: Path | None,
                  write_config: Path | None) -> None:
    """Run the sandbox until SIGINT/SIGTERM."""
    from cname_flow.sandbox.app import serve
    from cname_flow.sandbox.config import SandboxConfig

    cfg = SandboxConfig.load(sandbox_config) if sandbox_config else SandboxConfig()
    serve(cfg, state_file=state, info_file=info_file, config_out=write_config,
          echo=render.console().print)


@main.group()
def cert() -> None:
    """Certificates of bound domains (attach and rotate with `bind --cert-file/--cert-id`)."""


@cert.command("remove")
@click.argument("domain")
@click.option("--bucket", help="OSS bucket (default: defaults.bucket).")
@click.pass_obj
@guarded
def cert_remove(obj: CliState, domain: str, bucket: str | None) -> None:
    """Unbind DOMAIN's certificate (PutCname with DeleteCertificate)."""
    binding = service.make_binding(obj.settings, domain, bucket=bucket, destructive=True)
    clients = obj.clients()
    with service.open_store(obj.settings) as store:
        render.console().print(certificates.remove_certificate(clients, binding, store))


@cert.command("status")
@click.option("--bucket", "buckets", multiple=True,
              help="Bucket to list (repeatable; default: every bucket in the store and "
                   "defaults.bucket).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@guarded
def cert_status(obj: CliState, buckets: tuple[str, ...], as_json: bool) -> None:
    """List each bound domain's certificate, fingerprint and days left (a bucket that cannot
    be listed, e.g. NoSuchBucket, is reported on its own row)."""
    chosen = certificates.certificate_buckets(obj.settings, buckets)
    rows = certificates.certificate_rows(obj.clients(), chosen)
    if as_json:
        render.emit_json([r.to_json() for r in rows])
    else:
        render.console().print(render.certificate_table(rows))


@main.command()
@click.argument("domain", required=False)
@click.option("--bucket", help="OSS bucket (default: defaults.bucket).")
@click.option("--unbound", "prune", is_flag=True,
              help="Instead of DOMAIN: forget every unbound or never-started entry.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@guarded
def forget(obj: CliState, domain: str | None, bucket: str | None, prune: bool,
           as_json: bool) -> None:
    """Drop DOMAIN's entry from the store (nothing changes at OSS or in DNS).

    Refused (exit 75) while a process drives the binding. With --unbound, every entry that
    was unbound or never started (no token, no record, no PutCname) is forgotten instead;
    bindings in flight are left.
    """
    if prune == (domain is not None):
        raise InputError("give either DOMAIN or --unbound", hint="cname-flow forget --help")
    if prune:
        gone = service.prune(obj.settings)
    else:
        assert domain is not None
        key = service.make_binding(obj.settings, domain, bucket=bucket, destructive=True).key
        if not service.forget(obj.settings, key):
            raise InputError(f"no entry {key} in the store; nothing was forgotten",
                             hint="`cname-flow status` lists the entries; --bucket picks one")
        gone = [key]
    if as_json:
        render.emit_json({"forgotten": gone})
        return
    out = render.console()
    for key in gone:
        out.print(f"forgot {key}")
    if not gone:
        out.print("nothing to forget")


main.add_command(batch)
main.add_command(reconcile)
main.add_command(store)
main.add_command(worker)
main.add_command(doctor)
