"""The command-line interface: parse, build objects from Settings, call one library entry, render.

Exit codes (the one table, :class:`~cname_flow.cli.common.Outcome`) and error rendering live in
:mod:`cname_flow.cli.common`; batch jobs and reconciliation live in :mod:`cname_flow.cli.batch` and
:mod:`cname_flow.cli.reconcile`, mounted here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cname_flow import __version__
from cname_flow.cli.common import CliState, check_no_wait, guarded, no_wait_option
from cname_flow.cli.lazy import HELP_ONLY, LazyGroup, LazyModule
from cname_flow.errors import InputError
from cname_flow.manual.errors import AwaitingCustomerDns
from cname_flow.model import Binding, normalize_domain

if TYPE_CHECKING:
    from cname_flow import api, service
    from cname_flow.cli import log, manual, output, render
    from cname_flow.journal import BindingRecord
    from cname_flow.scaleout import routing
    from cname_flow.workflow import plan as workflow_plan
else:  # loaded when a command uses them, so --help and --version stay fast (cli/lazy.py)
    api, service = LazyModule("cname_flow.api"), LazyModule("cname_flow.service")
    log, render = LazyModule("cname_flow.cli.log"), LazyModule("cname_flow.cli.render")
    manual, output = LazyModule("cname_flow.cli.manual"), LazyModule("cname_flow.cli.output")
    routing = LazyModule("cname_flow.scaleout.routing")
    workflow_plan = LazyModule("cname_flow.workflow.plan")

#: Commands that set up logging themselves (the demo always logs to the console).
OWN_LOGGING = frozenset({"demo"})

#: Sub-commands in their own modules, imported when invoked: name → (module:attr, one-line help).
LAZY_COMMANDS = {
    "unbind": ("cname_flow.cli.removal:unbind",
               "Unbind DOMAIN (DeleteCname), then delete the DNS records cname-flow created."),
    "cert": ("cname_flow.cli.removal:cert",
             "Certificates of bound domains (attach and rotate with `bind --cert-file`)."),
    "check": ("cname_flow.cli.manual:check",
              "Check a manual binding's TXT record now, at every authoritative nameserver."),
    "events": ("cname_flow.cli.events:events",
               "Print the event stream (events.jsonl), or re-send the webhook outbox."),
    "doctor": ("cname_flow.cli.doctor:doctor",
               "Check credentials, clock, RAM permissions, bucket and DNS delegation."),
    "batch": ("cname_flow.cli.batch:batch",
              "Bind many domains at once from a manifest (resumable jobs)."),
    "reconcile": ("cname_flow.cli.reconcile:reconcile",
                  "Compare a manifest (desired state) with OSS and DNS; report or fix drift."),
    "store": ("cname_flow.cli.store:store",
              "The store of record: where binding state lives (journal or PostgreSQL)."),
    "worker": ("cname_flow.cli.worker:worker",
               "Run a scale-out worker: drive bindings submitted to the PostgreSQL store."),
}

#: ``-h`` as well as ``--help`` everywhere (sub-commands inherit the context settings).
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}


@click.group(cls=LazyGroup, lazy_commands=LAZY_COMMANDS, context_settings=CONTEXT_SETTINGS)
@click.option("--config", "config", type=click.Path(path_type=Path, dir_okay=False),
              envvar="CNAME_FLOW_CONFIG", help="cname-flow config file (YAML).")
@click.option("--profile", default=None, metavar="NAME",
              help="Profile of the aliyun CLI's ~/.aliyun/config.json to take credentials from "
                   "(default: $ALIBABA_CLOUD_PROFILE).")
@click.option("--region", "oss_region", default=None, metavar="REGION",
              help="OSS region (oss.region); default: $OSS_REGION, else the config's.")
@click.option("--endpoint", "oss_endpoint", default=None, metavar="ENDPOINT",
              help="OSS endpoint (oss.endpoint); default: $OSS_ENDPOINT, else the config's.")
@click.option("--verbose", "-v", is_flag=True, help="Log debug events too.")
@click.option("--json-logs/--console-logs", default=None,
              help="Log format (default: console on a terminal, JSON otherwise).")
@click.version_option(version=__version__, package_name="cname-flow")
@click.pass_context
def main(ctx: click.Context, config: Path | None, profile: str | None, oss_region: str | None,
         oss_endpoint: str | None, verbose: bool, json_logs: bool | None) -> None:
    """Bind custom domains to Alibaba Cloud OSS buckets, resumably.

    Credentials, region and endpoint follow ossutil and the aliyun CLI (docs/conventions.md).
    """
    if ctx.invoked_subcommand not in OWN_LOGGING and not _asks_for_help(ctx):
        log.configure(json_logs=json_logs, verbose=verbose)
    state = ctx.ensure_object(CliState)  # an object given by a test is kept
    state.config_path = config
    state.set_globals(profile=profile, region=oss_region, endpoint=oss_endpoint)


def _asks_for_help(ctx: click.Context) -> bool:
    """True when the sub-command will only print its help (no logging set-up needed)."""
    return bool(ctx.meta.get(HELP_ONLY))


Decorator = Callable[[Any], Any]


def _option_list() -> list[Decorator]:
    return [
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
    ]


def binding_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by bind and plan, with one DOMAIN argument (bind)."""
    opts: list[Decorator] = [click.argument("domain"), *_option_list()]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def plan_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options of :func:`binding_options`, with one or more DOMAINS (plan)."""
    opts: list[Decorator] = [click.argument("domains", nargs=-1, required=True),
                             *_option_list()]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


#: ``bind --dns manual``: a person adds the TXT record (:mod:`cname_flow.manual`).
DNS_OPTION = click.option(
    "--dns", "dns", type=click.Choice(["manual"]), default=None,
    help="manual: a person adds the TXT record (a customer's DNS); cname-flow prints it, "
         "checks the authoritative nameservers, and exits 75 if it is not there in time.")


def _binding(obj: CliState, kw: dict[str, Any]) -> Binding:
    if kw["route_target"] and not kw["route"]:
        raise InputError("--route-target is only used with --route (it is the target of the "
                         "routing CNAME that --route creates)",
                         hint="add --route, or drop --route-target")
    if kw["force_cert"] and not (kw["cert_file"] or kw["key_file"] or kw["cert_id"]):
        raise InputError("--force-cert is only used with a certificate (--cert-file with "
                         "--key-file, or --cert-id)", hint="add the certificate, or drop "
                         "--force-cert")
    return api.make_binding(
        obj.settings, kw["domain"], bucket=kw["bucket"], region=kw["region"], route=kw["route"],
        route_target=kw["route_target"], remove_txt=kw["remove_txt"], cert_file=kw["cert_file"],
        key_file=kw["key_file"], cert_id=kw["cert_id"], force_cert=kw["force_cert"])


@main.command()
@binding_options
@click.option("--dry-run", is_flag=True, help="Only show the plan; change nothing.")
@DNS_OPTION
@no_wait_option
@click.pass_obj
@guarded
def bind(obj: CliState, dry_run: bool, no_wait: bool, dns: str | None, **kw: Any) -> None:
    """Bind DOMAIN to a bucket: token, TXT, propagation, PutCname, verification (resumable).

    With store.url set, the binding is submitted to the workers as a job of one and followed
    (same output and exit code); --no-wait prints the job id and returns.

    With --dns manual (or a manual zone in dns.zones) nothing is written: the TXT record to
    add is printed, checked for up to manual.bind_wait_s, and the command exits 75 if it is
    not there yet (the binding stays in the store; `reconcile` or `check` continue it).
    """
    if dry_run:
        return _plan(obj, kw)
    check_no_wait(obj.settings, no_wait)
    binding = _binding(obj, kw)
    clients = obj.clients()
    human = sys.stderr.isatty() and not kw["as_json"]
    if routing.worker_mode(obj.settings):
        if dns == "manual":
            raise InputError("--dns manual is not carried to the workers (store.url is set)",
                             hint="map the domain's zone to manual in the config: "
                                  "dns: {zones: {<zone>: manual}}")
        record = _bind_on_workers(obj, clients, binding, no_wait=no_wait, human=human,
                                  as_json=kw["as_json"])
        if record is None:
            return None
    else:
        with service.open_store(obj.settings) as store, \
                render.propagation_progress(human) as on_round:
            try:
                record = service.bind(
                    clients, binding, store, on_round=on_round, manual=dns == "manual",
                    on_step=render.StepPrinter(render.err_console()) if human else None)
            except AwaitingCustomerDns as exc:  # manual mode: instructions, then exit 75
                manual.waiting(exc, store.get(binding.key), kw["as_json"])
    if kw["as_json"]:
        output.emit("bind", render.bind_json(record))
        return None
    render.print_bound(render.console(), record)
    return None


def _bind_on_workers(obj: CliState, clients: service.Clients, binding: Binding, *,
                     no_wait: bool, human: bool, as_json: bool = False,
                     ) -> BindingRecord | None:
    """Submit ``binding`` as a job of one; None with ``no_wait`` (the job id is printed), else
    its record once BOUND.

    Raises:
        CnameFlowError: the failing step's error, as a local bind raises it.
        Interrupted: Ctrl-C stopped the following (the job goes on in the workers).
    """
    submitted = routing.submit_binding(obj.settings, clients, binding)
    job_id = submitted.job_id
    if no_wait:
        if as_json:
            output.emit("bind-submitted", {"job_id": job_id, "binding": binding.key})
        else:
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
@plan_options
@click.option("--detailed-exitcode", is_flag=True,
              help="Exit 0 when nothing would change, 2 when something would, 1 on an error "
                   "(Terraform's -detailed-exitcode).")
@click.pass_obj
def plan(obj: CliState, /, detailed_exitcode: bool, domains: tuple[str, ...],
         **kw: Any) -> None:
    """Show what `bind` would do for each DOMAIN and why (read-only)."""
    try:
        changes = guarded(_plan_many)(obj, domains, kw)
    except SystemExit as exc:  # guarded printed the error
        if detailed_exitcode and exc.code not in (0, None):
            sys.exit(1)
        raise
    if detailed_exitcode:
        sys.exit(2 if changes else 0)


def _plan_many(obj: CliState, domains: tuple[str, ...], kw: dict[str, Any]) -> int:
    """Plan each domain in turn; the number of changing actions over all of them."""
    plans = [_plan_one(obj, {**kw, "domain": domain}) for domain in domains]
    if kw["as_json"]:
        if len(plans) == 1:
            output.emit("plan", plans[0].to_json())
        else:
            output.emit("plans", {"plans": [p.to_json() for p in plans]})
    else:
        out = render.console()
        for one in plans:
            out.print(render.plan_table(one))
    return sum(p.changes for p in plans)


def _plan(obj: CliState, kw: dict[str, Any]) -> None:
    _plan_many(obj, (kw["domain"],), kw)


def _plan_one(obj: CliState, kw: dict[str, Any]) -> workflow_plan.Plan:
    binding = _binding(obj, kw)
    ctx = service.step_context(obj.clients(), binding)
    record = service.read_bindings(obj.settings).get(binding.key)
    return workflow_plan.plan_binding(ctx, record)


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
        output.emit("status", {"bindings": [manual.with_manual(render.record_json(r), r)
                                            for r in records]})
    elif not records:
        render.console().print("no bindings yet" if domain is None else
                               f"no binding of {normalize_domain(domain)} yet")
    else:
        render.console().print(render.status_table(records))
        manual.print_statuses(render.console(), records)


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


@main.group(cls=LazyGroup)
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
        output.emit("forget", {"forgotten": gone})
        return
    out = render.console()
    for key in gone:
        out.print(f"forgot {key}")
    if not gone:
        out.print("nothing to forget")
