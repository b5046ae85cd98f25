"""Shared set-up of the batch end-to-end tests and the bench: a sandbox world sized for N
domains, a cname-flow config pointing at it, manifests, and the `batch` CLI as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from cname_flow.sandbox.app import SandboxInfo
from cname_flow.sandbox.config import (
    BucketConfig,
    FaultsConfig,
    NameserverConfig,
    OpFaults,
    OssLimits,
    SandboxConfig,
)

#: Domains per bucket: the documented OSS limit of CNAMEs per bucket
#: (https://www.alibabacloud.com/help/en/oss/user-guide/map-custom-domain-names-5).
PER_BUCKET = 100
API_OPS = ("GetBucketInfo", "CreateCnameToken", "GetCnameToken", "PutCname", "ListCname",
           "DescribeDomains", "DescribeDomainInfo", "DescribeSubDomainRecords", "AddDomainRecord",
           "UpdateDomainRecord", "UpdateDomainRecordRemark")
#: The writes whose answer :func:`world`'s ``lost_rate`` loses after they ran.
LOST_OPS = ("CreateCnameToken", "PutCname", "AddDomainRecord", "UpdateDomainRecordRemark")
#: Runs the root CLI with `batch` mounted, whether or not cli.py mounts it already.
CLI = [sys.executable, "-m", "cname_flow"]


def buckets_for(n: int) -> list[str]:
    """Bucket names holding ``n`` domains, :data:`PER_BUCKET` each."""
    return [f"batch-bucket-{i:02d}" for i in range((n + PER_BUCKET - 1) // PER_BUCKET)]


def world(n: int, *, lag: float, latency_ms: float = 0.0, jitter_ms: float = 0.0,
          error_rate: float = 0.0, lost_rate: float = 0.0, seed: int = 7) -> SandboxConfig:
    """The default world plus enough buckets for ``n`` domains; ns2 lags ``lag`` seconds.

    API operations get ``latency_ms ± jitter_ms`` and ``error_rate`` (503) faults; the writes of
    :data:`LOST_OPS` also ``lost_rate`` "executed, answer lost" faults (half a 503, half a
    connection reset, after the operation ran); DNS queries get none.
    """
    base = SandboxConfig()
    ns = [NameserverConfig(name=s.name, address=s.address, lag=lag if i else 0.0)
          for i, s in enumerate(base.nameservers)]
    lost = {"error_after_rate": lost_rate / 2, "drop_after_rate": lost_rate / 2}
    ops = {op: OpFaults(latency_ms=latency_ms, jitter_ms=jitter_ms, error_rate=error_rate,
                        **(lost if op in LOST_OPS else {}))
           for op in API_OPS}
    buckets = [*base.buckets, *(BucketConfig(name=b) for b in buckets_for(n))]
    return base.model_copy(update={
        "nameservers": ns, "buckets": buckets,
        "faults": FaultsConfig(seed=seed, ops=ops),
        "oss": OssLimits(max_cnames_per_bucket=PER_BUCKET),
    })


def domains(n: int) -> list[str]:
    """``n`` domains in the sandbox zone example.com."""
    return [f"d{i:04d}.batch.example.com" for i in range(n)]


def write_manifest(path: Path, n: int) -> Path:
    """A YAML manifest binding :func:`domains` to :func:`buckets_for`, PER_BUCKET each."""
    names = buckets_for(n)
    entries = [{"domain": d, "bucket": names[i // PER_BUCKET]} for i, d in enumerate(domains(n))]
    path.write_text(yaml.safe_dump({"defaults": {"region": "cn-hangzhou"},
                                    "bindings": entries}), encoding="utf-8")
    return path


def write_config(info: SandboxInfo, path: Path, *, fast: bool = True,
                 concurrency: int = 32) -> Path:
    """A cname-flow config for ``info``; ``fast`` shortens the propagation schedule."""
    cfg: dict[str, Any] = info.cname_flow_config(str(path.parent / "state"))
    prop = cfg["propagation"]
    if fast:
        prop |= {"first_poll_s": 0.1, "backoff_initial_s": 0.1, "backoff_max_s": 0.5,
                 "backoff_jitter_s": 0.05, "confirmation_gap_s": 0.2, "query_timeout_s": 1.0,
                 "deadline_s": 60.0}
    cfg["batch"] = {"concurrency": concurrency}
    cfg["ownership"] = {"initial_s": 0.2, "max_s": 1.0, "jitter_s": 0.1}
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def env_for(info: SandboxInfo) -> dict[str, str]:
    """The process environment for the CLI: sandbox credentials, no proxies."""
    env = {k: v for k, v in os.environ.items()
           if k.upper() not in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")}
    env |= {"OSS_ACCESS_KEY_ID": info.access_key_id,
            "OSS_ACCESS_KEY_SECRET": info.access_key_secret, "NO_PROXY": "127.0.0.1"}
    return env


def batch_cli(config: Path, *args: str, env: dict[str, str],
              **kwargs: Any) -> subprocess.Popen[str]:
    """Start ``cname-flow --config CONFIG batch ARGS…`` (stdout/stderr piped)."""
    return subprocess.Popen([*CLI, "--config", str(config), "--json-logs", "batch", *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kwargs)
