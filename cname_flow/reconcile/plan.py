"""The reconcile plan as a value: findings, the actions a policy allows, the change budget, JSON.

Built without side effects (docs/design.md, "Plans are values"; octoDNS ``provider/plan.py``).
A plan written with ``--plan-out`` and given back with ``--plan`` is applied only if a fresh plan
of the same manifest and policy has exactly the same findings with the same observed-state
digests; else :class:`~cname_flow.errors.StalePlan` (exit 3) says which keys changed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cname_flow.errors import InputError, StalePlan, UnsafePlan
from cname_flow.journal.records import format_ts, parse_ts
from cname_flow.reconcile.drift import REMOTE_ACTIONS, Action, Finding, Policy, allowed

PLAN_VERSION = 1

#: Default change budget: this fraction of the desired bindings (at least one change).
DEFAULT_BUDGET_FRACTION = 0.10

#: Order in which actions run: removals first, then journal bookkeeping, then binds.
_ORDER = {Action.UNBIND: 0, Action.DELETE_TXT: 1, Action.FORGET_TXT: 2, Action.BIND: 3}


def default_max_changes(desired: int) -> int:
    """10 % of ``desired`` bindings, rounded down, but at least 1."""
    return max(1, math.floor(desired * DEFAULT_BUDGET_FRACTION))


@dataclass(frozen=True, slots=True)
class ReconcilePlan:
    """What differs and what a run under ``policy`` would do.

    Attributes:
        manifest: path of the manifest the plan was made from.
        manifest_digest: SHA-256 hex of the manifest file's bytes.
        policy: the policy the actions were chosen under.
        desired: how many bindings the manifest wants.
        findings: every finding (drift and notices), key order.
        created_at: aware UTC time the state was observed.
    """

    manifest: str
    manifest_digest: str
    policy: Policy
    desired: int
    findings: tuple[Finding, ...]
    created_at: datetime

    @property
    def drift(self) -> tuple[Finding, ...]:
        """Findings that are drift (not notices)."""
        return tuple(f for f in self.findings if f.is_drift)

    def actions(self) -> list[tuple[str, Action]]:
        """The (key, action) pairs the policy allows, one per key and action, in run order."""
        pairs = {(f.key, f.action) for f in self.findings
                 if f.action is not Action.NONE and allowed(self.policy, f.action)}
        return sorted(pairs, key=lambda p: (_ORDER[p[1]], p[0]))

    @property
    def changes(self) -> int:
        """How many allowed actions change remote state (what the budget limits)."""
        return sum(1 for _, action in self.actions() if action in REMOTE_ACTIONS)

    def check_budget(self, max_changes: int | None, *, force: bool) -> None:
        """Refuse a plan that changes more than the budget allows.

        Args:
            max_changes: the budget; None means :func:`default_max_changes`.
            force: accept any number of changes.

        Raises:
            UnsafePlan: over budget and not ``force``.
        """
        limit = default_max_changes(self.desired) if max_changes is None else max_changes
        if self.changes > limit and not force:
            raise UnsafePlan(
                f"the plan makes {self.changes} remote change(s), over the budget of {limit} "
                f"({self.desired} desired binding(s)); nothing was changed",
                hint="review the plan, then raise --max-changes or re-run with --force",
            )

    def check_same(self, fresh: ReconcilePlan) -> None:
        """Refuse to apply this (reviewed) plan when ``fresh`` observed another state.

        Raises:
            StalePlan: another manifest or policy, or findings/digests that differ (keys named).
        """
        if (self.manifest_digest, self.policy) != (fresh.manifest_digest, fresh.policy):
            raise StalePlan("the manifest or the policy changed since the plan was made; "
                            "nothing was changed", hint="make and review a new plan")
        mine = {(f.key, f.kind, f.action, f.digest) for f in self.findings}
        now = {(f.key, f.kind, f.action, f.digest) for f in fresh.findings}
        keys = sorted({item[0] for item in mine ^ now})
        if keys:
            raise StalePlan(f"state changed since the plan was made, for {', '.join(keys)}; "
                            "nothing was changed", hint="make and review a new plan")

    def to_json(self) -> dict[str, object]:
        """JSON-able form (also the ``--plan-out`` file)."""
        return {
            "schema": "cname-flow/reconcile-plan/v1",  # docs/json-output.md
            "version": PLAN_VERSION,
            "manifest": self.manifest,
            "manifest_digest": self.manifest_digest,
            "policy": str(self.policy),
            "desired": self.desired,
            "created_at": format_ts(self.created_at),
            "changes": self.changes,
            "actions": [{"key": k, "action": str(a)} for k, a in self.actions()],
            "findings": [f.to_json() for f in self.findings],
        }

    def write(self, path: Path) -> None:
        """Write the plan as JSON (mode 0600, replaced atomically)."""
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        tmp.chmod(0o600)
        tmp.replace(path)

    @classmethod
    def read(cls, path: Path) -> ReconcilePlan:
        """Read a plan written by :meth:`write`.

        Raises:
            InputError: unreadable file, not a plan, or another version.
        """
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") != PLAN_VERSION:
                raise ValueError(f"plan version {data.get('version')!r}, want {PLAN_VERSION}")
            return cls(str(data["manifest"]), str(data["manifest_digest"]),
                       Policy(data["policy"]), int(data["desired"]),
                       tuple(Finding.from_json(f) for f in data["findings"]),
                       parse_ts(str(data["created_at"])))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InputError(f"{path}: not a reconcile plan ({exc})") from exc
