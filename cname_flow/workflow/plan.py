"""Read-only planning: what ``bind`` would do for a binding, and why, as a value.

Building a plan calls only read APIs (ListCname, GetCnameToken, DescribeDomains,
DescribeSubDomainRecords); it never creates a token, writes a record or queries the target name
through a recursive resolver.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cname_flow.certs import LocalCertificate, plan_certificate
from cname_flow.dns.base import OWNER_REMARK
from cname_flow.errors import CnameFlowError
from cname_flow.journal import BindingRecord
from cname_flow.model import CertificateInfo, Step, txt_name
from cname_flow.workflow.context import BindingRun, StepContext


@dataclass(frozen=True, slots=True)
class PlannedAction:
    """One thing the run would do (or skip), with the reason."""

    step: str
    action: str
    reason: str


@dataclass(frozen=True, slots=True)
class Plan:
    """What a run of one binding would do. ``blocked`` says why it cannot run at all."""

    binding: str
    actions: tuple[PlannedAction, ...] = field(default_factory=tuple)
    blocked: str | None = None

    @property
    def changes(self) -> int:
        """How many actions would change remote state (``warn`` notes change nothing)."""
        return sum(1 for a in self.actions
                   if not a.action.startswith(("skip", "read", "wait", "warn")))

    def to_json(self) -> dict[str, object]:
        """JSON-able form for ``--json``."""
        return {
            "binding": self.binding,
            "blocked": self.blocked,
            "changes": self.changes,
            "actions": [{"step": a.step, "action": a.action, "reason": a.reason}
                        for a in self.actions],
        }


def plan_binding(ctx: StepContext, record: BindingRecord | None) -> Plan:
    """Observe the binding's remote state and list the actions a run would take.

    Reads only: ListCname, GetCnameToken, the zone, the TXT records at ``_dnsauth.<domain>``.
    A failing read (e.g. ZoneNotFound) is returned as the plan's ``blocked`` reason.
    """
    b = ctx.binding
    try:
        return Plan(b.key, tuple(_actions(ctx, BindingRun(ctx.ports, b), record)))
    except CnameFlowError as exc:
        return Plan(b.key, blocked=str(exc))


def _actions(
    ctx: StepContext, run: BindingRun, record: BindingRecord | None
) -> list[PlannedAction]:
    b, oss, dns = ctx.binding, ctx.ports.oss, ctx.ports.dns
    zone = run.zone()
    acts = [PlannedAction("zone", "read", f"{txt_name(b.domain)} lives in zone {zone.name} "
                          f"(nameservers {', '.join(zone.nameservers)})")]
    entry = run.cname_entry()
    if entry is not None and entry.status == "Enabled":
        acts.append(PlannedAction(Step.CREATE_TOKEN, "skip",
                                  f"{b.domain} is already bound to {b.bucket}"))
        acts.extend(_certificate_actions(ctx, entry.certificate))
        return acts + _tail(ctx, record)
    token = oss.get_token(b.bucket, b.domain)
    if token is None or token.expired(ctx.ports.now()):
        acts.append(PlannedAction(Step.CREATE_TOKEN, "CreateCnameToken",
                                  "no valid CNAME token for this domain on the bucket"))
        value = None
    else:
        value = token.token
        acts.append(PlannedAction(Step.CREATE_TOKEN, "CreateCnameToken (same token)",
                                  "OSS answers the live token, valid until "
                                  f"{token.expires_at.isoformat()}"))
    existing = dns.list_records(zone, txt_name(b.domain), "TXT")
    if value is not None and any(r.value == value for r in existing):
        acts.append(PlannedAction(Step.WRITE_TXT, "skip", "the TXT record already holds the token"))
    else:
        recorded = record.txt_record_id if record else None
        ours = [r for r in existing if r.record_id == recorded or r.remark == OWNER_REMARK]
        what = (f"UpdateDomainRecord {ours[0].record_id} in place" if ours
                else "AddDomainRecord TXT")
        foreign = len(existing) - len(ours)
        why = f"publish the token at {txt_name(b.domain)}"
        if foreign:
            why += f"; {foreign} TXT record(s) there that cname-flow did not create stay untouched"
        acts.append(PlannedAction(Step.WRITE_TXT, what, why))
    acts.append(PlannedAction(Step.WAIT_PROPAGATION, "wait",
                              "until every authoritative nameserver address serves the token"))
    acts.extend(_icp_warning(b.region or oss.bucket_region(b.bucket), b.domain))
    acts.extend(_certificate_actions(ctx, None, put=True))
    acts.append(PlannedAction(Step.VERIFY, "read", "ListCname must show the domain Enabled"))
    return acts + _tail(ctx, record)


def mainland_region(region: str) -> bool:
    """Whether an OSS region is in mainland China (``cn-*`` except ``cn-hongkong``), where a
    custom domain needs an ICP filing ("Map a custom domain name",
    https://www.alibabacloud.com/help/en/oss/user-guide/map-custom-domain-names-5)."""
    return region.startswith("cn-") and region != "cn-hongkong"


def _icp_warning(region: str, domain: str) -> list[PlannedAction]:
    if not mainland_region(region):
        return []
    return [PlannedAction(Step.PUT_CNAME, "warn", f"the bucket is in {region} (mainland China): "
                          f"{domain} needs an ICP filing, else PutCname fails for good")]


def _certificate_actions(
    ctx: StepContext, current: CertificateInfo | None, *, put: bool = False
) -> list[PlannedAction]:
    desired: LocalCertificate | str | None = ctx.certificate
    if desired is None:
        return [PlannedAction(Step.PUT_CNAME, "PutCname", "bind the domain")] if put else []
    plan = plan_certificate(current, desired, force=ctx.binding.options.force_cert)
    if plan.action == "none" and not put:
        return [PlannedAction(Step.PUT_CNAME, "skip", plan.reason)]
    return [PlannedAction(Step.PUT_CNAME, f"PutCname ({plan.action} certificate)", plan.reason)]


def _tail(ctx: StepContext, record: BindingRecord | None) -> list[PlannedAction]:
    o = ctx.binding.options
    acts = []
    if o.route:
        acts.append(PlannedAction(Step.FINISH, "upsert CNAME",
                                  f"{ctx.binding.domain} CNAME {ctx.binding.route_target}"))
    if o.remove_txt:
        acts.append(PlannedAction(Step.FINISH, "DeleteDomainRecord",
                                  "remove our _dnsauth record after verification"))
    return acts
