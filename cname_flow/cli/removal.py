"""``cname-flow unbind`` and ``cname-flow cert`` (``status``, ``remove``): the commands that take
something away, each with ``--dry-run`` and a confirmation (``--yes`` to skip it).

Both first look (read-only: the store, ListCname, the DNS records cname-flow made) and say what
they would do; a domain that is not bound is reported as such and nothing is asked or written.
Then, unless ``--dry-run``, they ask (:func:`cname_flow.cli.output.confirm`: off a terminal
without ``--yes`` they refuse with exit 2) and act through :func:`cname_flow.service.unbind` /
:func:`cname_flow.certificates.remove_certificate`.

Mounted in :mod:`cname_flow.cli.main` with ``main.add_command``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
from rich.text import Text

from cname_flow.cli import render
from cname_flow.cli.common import CliState, guarded
from cname_flow.cli.lazy import LazyGroup
from cname_flow.cli.output import confirm, emit, plain

if TYPE_CHECKING:
    from cname_flow.journal import BindingRecord
    from cname_flow.model import Binding
    from cname_flow.service import Clients


def _dry_run_option(fn: click.decorators.FC) -> click.decorators.FC:
    return click.option("--dry-run", is_flag=True,
                        help="Only show what would change; change nothing.")(fn)


def _yes_option(fn: click.decorators.FC) -> click.decorators.FC:
    return click.option("--yes", "-y", "yes", is_flag=True,
                        help="Do not ask for confirmation (required off a terminal).")(fn)


def unbind_preview(clients: Clients, binding: Binding, record: BindingRecord | None,
                   ) -> list[str]:
    """What ``unbind`` would do, read-only: DeleteCname, and each DNS record cname-flow made
    for the domain (its id in the store, or the ownership remark) that would be deleted.

    Args:
        clients: the adapters (one ListCname, then the zone's TXT and CNAME records).
        binding: the binding to unbind.
        record: the store's entry for it, or None.

    Returns:
        One line per action; empty when the domain is neither in the store nor in ListCname
        (never bound: nothing to do).

    Raises:
        OssError, DnsProviderError: a read failed.
    """
    from cname_flow.dns.base import OWNER_REMARK
    from cname_flow.model import Phase, txt_name

    listed = any(e.domain == binding.domain for e in clients.oss.list_cnames(binding.bucket))
    if record is None and not listed:
        return []
    lines = [f"DeleteCname {binding.domain} on {binding.bucket}"] if listed else []
    ids = {v for v in (record.txt_record_id, record.route_record_id) if v} if record else set()
    zone = clients.dns.find_zone(txt_name(binding.domain))
    for name, rtype in ((txt_name(binding.domain), "TXT"), (binding.domain, "CNAME")):
        lines += [f"delete {rtype} {name} (record {ref.record_id})"
                  for ref in clients.dns.list_records(zone, name, rtype)
                  if ref.record_id in ids or ref.remark == OWNER_REMARK]
    if record is not None and record.phase != Phase.UNBOUND and not listed:
        lines.append(f"mark {binding.key} UNBOUND in the store (ListCname does not show it)")
    return lines


@click.command()
@click.argument("domain")
@click.option("--bucket", help="OSS bucket (default: defaults.bucket).")
@_dry_run_option
@_yes_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
@click.pass_obj
@guarded
def unbind(obj: CliState, domain: str, bucket: str | None, dry_run: bool, yes: bool,
           as_json: bool) -> None:
    """Unbind DOMAIN (DeleteCname), then delete the DNS records cname-flow created for it.

    Asks first (--yes skips the question; off a terminal --yes is required); --dry-run only
    shows what would change. A domain never bound (unknown to the store, not on the bucket)
    is reported and left alone: nothing is asked or written.
    """
    from cname_flow import service

    binding = service.make_binding(obj.settings, domain, bucket=bucket, destructive=True)
    clients = obj.clients()
    record = service.read_bindings(obj.settings).get(binding.key)
    planned = unbind_preview(clients, binding, record)
    done: list[str] = []
    if planned and not dry_run:
        confirm(f"unbind {binding.domain} from {binding.bucket} ({len(planned)} change(s))",
                yes=yes)
        with service.open_store(obj.settings) as store:
            done = service.unbind(clients, binding, store)
    if as_json:
        emit("unbind", {"binding": binding.key, "bound": bool(planned), "dry_run": dry_run,
                        "planned": planned, "done": done, "unbound": bool(done)})
        return
    out = render.console()
    if not planned:
        out.print(plain(f"{binding.domain} is not bound to {binding.bucket} (not in the store, "
                        "not in ListCname): nothing to unbind, nothing was changed"))
    for line in planned if dry_run else done:
        out.print(plain(f"would {line}" if dry_run else line))


@click.group(cls=LazyGroup)
def cert() -> None:
    """Certificates of bound domains (attach and rotate with `bind --cert-file/--cert-id`)."""


@cert.command("remove")
@click.argument("domain")
@click.option("--bucket", help="OSS bucket (default: defaults.bucket).")
@_dry_run_option
@_yes_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
@click.pass_obj
@guarded
def cert_remove(obj: CliState, domain: str, bucket: str | None, dry_run: bool, yes: bool,
                as_json: bool) -> None:
    """Unbind DOMAIN's certificate (PutCname with DeleteCertificate).

    Asks first (--yes skips the question; off a terminal --yes is required); --dry-run only
    shows what would change.
    """
    from cname_flow import certificates, service

    binding = service.make_binding(obj.settings, domain, bucket=bucket, destructive=True)
    clients = obj.clients()
    entry = next((e for e in clients.oss.list_cnames(binding.bucket)
                  if e.domain == binding.domain), None)
    cert_id = entry.certificate.cert_id if entry and entry.certificate else None
    if entry is None:
        said = f"{binding.domain} is not bound to {binding.bucket}: no certificate to remove"
    elif entry.certificate is None:
        said = f"{binding.domain} on {binding.bucket} has no certificate: nothing to remove"
    elif dry_run:
        said = f"would remove certificate {cert_id} from {binding.domain} on {binding.bucket}"
    else:
        confirm(f"remove certificate {cert_id} from {binding.domain} on {binding.bucket}",
                yes=yes)
        with service.open_store(obj.settings) as store:
            said = certificates.remove_certificate(clients, binding, store)
    if as_json:
        emit("cert-remove", {"binding": binding.key, "bound": entry is not None,
                             "cert_id": cert_id, "dry_run": dry_run,
                             "removed": bool(cert_id) and not dry_run, "message": said})
        return
    render.console().print(plain(said))


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
    from cname_flow import certificates

    chosen = certificates.certificate_buckets(obj.settings, buckets)
    rows = certificates.certificate_rows(obj.clients(), chosen)
    if as_json:
        emit("cert-status", {"buckets": chosen, "certificates": [r.to_json() for r in rows]})
    elif not rows:
        render.console().print(Text(f"no bound domains on {', '.join(chosen)}"))
    else:
        render.console().print(render.certificate_table(rows))
