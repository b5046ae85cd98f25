"""Test kit for end-to-end runs of cname-flow against an in-process sandbox.

``sandbox_env(tmp_path, world)`` starts the sandbox, writes a cname-flow config pointing at it
(with a fast propagation schedule so tests do not wait for production defaults) and returns the
environment a ``cname-flow`` process needs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cname_flow.journal import Journal
from cname_flow.sandbox.app import Sandbox
from cname_flow.sandbox.config import NameserverConfig, SandboxConfig
from cname_flow.sandbox.state import DnsRecord

#: Propagation settings for tests: the production algorithm with short gaps.
FAST_PROPAGATION: dict[str, Any] = {
    "first_poll_s": 0.2,
    "backoff_initial_s": 0.3,
    "backoff_max_s": 1.0,
    "backoff_jitter_s": 0.1,
    "confirmation_gap_s": 0.3,
    "deadline_s": 20,
}


def world(*lags: float | None, **updates: Any) -> SandboxConfig:
    """The default sandbox world with one nameserver per given lag (default: two, no lag)."""
    base = SandboxConfig()
    lags = lags or (0.0, 0.0)
    ns = [NameserverConfig(name=f"ns{i + 1}.sandbox.cname-flow.test", lag=lag)
          for i, lag in enumerate(lags)]
    return base.model_copy(update={"nameservers": ns, **updates})


@dataclass
class SandboxEnv:
    """A running sandbox plus the config file and environment that point cname-flow at it."""

    sandbox: Sandbox
    config: Path
    env: dict[str, str]
    journal: Path

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``cname-flow --config <config> ARGS`` as a real process."""
        return subprocess.run(
            [sys.executable, "-m", "cname_flow", "--config", str(self.config), *args],
            env=self.env, capture_output=True, text=True, timeout=timeout, check=False,
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """Start ``cname-flow --config <config> ARGS`` without waiting."""
        return subprocess.Popen(
            [sys.executable, "-m", "cname_flow", "--config", str(self.config), *args],
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def records(self, name: str, rtype: str = "TXT") -> list[DnsRecord]:
        """Records at owner ``name`` in the sandbox's Alidns, straight from its state."""
        state = self.sandbox.state
        zone = state.zone_for(name)
        assert zone is not None
        return [r for r in zone.records.values() if r.fqdn == name and r.type == rtype]

    def token(self, bucket: str, domain: str) -> str | None:
        """The CNAME token the sandbox holds for the domain, or None."""
        rec = self.sandbox.state.buckets[bucket].tokens.get(domain)
        return rec.token if rec else None

    def phase(self, key: str) -> str | None:
        """The journal's phase for a binding key."""
        rec = Journal.read_only(self.journal).get(key)
        return rec.phase if rec else None


def write_config(path: Path, sandbox: Sandbox, *, propagation: Mapping[str, Any] | None = None,
                 extra: Mapping[str, Any] | None = None) -> None:
    """Write a cname-flow config for the sandbox, with test propagation settings."""
    info = sandbox.info
    cfg = info.cname_flow_config(journal_dir=str(path.parent / "journal"))
    cfg["propagation"] = {**FAST_PROPAGATION, "nameserver_addresses": info.nameservers,
                          **(propagation or {})}
    cfg["defaults"] = {"bucket": "examplebucket", "region": info.region}
    cfg.update(extra or {})
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")


@contextmanager
def sandbox_env(tmp_path: Path, config: SandboxConfig | None = None, *,
                propagation: Mapping[str, Any] | None = None) -> Iterator[SandboxEnv]:
    """Start a sandbox and yield a :class:`SandboxEnv` pointing at it."""
    with Sandbox(config or world()) as sandbox:
        cfg = tmp_path / "cname-flow.yaml"
        write_config(cfg, sandbox, propagation=propagation)
        env = {k: v for k, v in os.environ.items()
               if k.upper() not in ("HTTP_PROXY", "HTTPS_PROXY") and not k.startswith("OSS_")}
        env |= {"OSS_ACCESS_KEY_ID": sandbox.info.access_key_id,
                "OSS_ACCESS_KEY_SECRET": sandbox.info.access_key_secret,
                "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        yield SandboxEnv(sandbox, cfg, env, tmp_path / "journal" / "bindings.jsonl")


def count_calls(sandbox: Sandbox, ops: Sequence[str]) -> dict[str, list[float]]:
    """Record the monotonic time of each call of these sandbox operations (via the fault plan)."""
    import time

    calls: dict[str, list[float]] = {op: [] for op in ops}
    original = sandbox.faults.decide

    def decide(op: str) -> Any:
        if op in calls:
            calls[op].append(time.monotonic())
        return original(op)

    sandbox.faults.decide = decide  # type: ignore[method-assign]
    return calls
