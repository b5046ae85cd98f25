"""How long after the TXT write does PutCname succeed, minus the nameserver lag?

For nameserver lags 0, 2 and 5 s (one of two sandbox nameservers lagging), binds fresh domains
with the product's default propagation policy and prints the median of
``(PutCname success - TXT write) - lag`` (target ≤ 1.5 s), beside what the common DNS-01 tool
defaults would take for the same lag: a fixed 10 s sleep (certbot) and a fixed 2 s poll of the
authoritative servers after a 2 s initial sleep (lego), the latter measured against the same
sandbox servers with dnspython.

Run: ``.venv/bin/python bench/bind_latency.py [--trials N]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rdatatype

from cname_flow import service
from cname_flow.cli import log
from cname_flow.config import load_settings
from cname_flow.sandbox.app import Sandbox, write_cname_flow_config
from cname_flow.sandbox.config import NameserverConfig, SandboxConfig

LAGS = (0.0, 2.0, 5.0)


def world(lag: float) -> SandboxConfig:
    base = SandboxConfig()
    ns = [NameserverConfig(name=f"ns{i + 1}.sandbox.cname-flow.test", lag=(lag if i else 0.0))
          for i in range(2)]
    return base.model_copy(update={"nameservers": ns})


def ours(sandbox: Sandbox, tmp: Path, lag: float, trials: int) -> list[float]:
    """Overheads (s) of real `bind` runs with the default policy."""
    info = sandbox.info
    cfg = tmp / f"lag{lag}.yaml"
    write_cname_flow_config(info, cfg)
    env = {"OSS_ACCESS_KEY_ID": info.access_key_id,
           "OSS_ACCESS_KEY_SECRET": info.access_key_secret}
    text = cfg.read_text().replace("journal:\n  dir: .cname-flow", f"journal:\n  dir: {tmp}/j{lag}")
    cfg.write_text(text)
    settings = load_settings(cfg, env=env)
    clients = service.Clients.from_settings(settings, env=env)
    out = []
    with service.open_store(settings) as journal:
        for i in range(trials):
            domain = f"lat{int(lag)}-{i}.example.com"
            binding = service.make_binding(settings, domain, bucket="examplebucket")
            service.bind(clients, binding, journal)
            zone = sandbox.state.zone_for(domain)
            assert zone is not None
            [txt] = [r for r in zone.records.values() if r.fqdn == f"_dnsauth.{domain}"]
            put_done = next(e.ts for e in journal.events(binding.key)
                            if e.step == "put_cname" and e.status == "done")
            written = datetime.fromtimestamp(txt.created_ms / 1000, tz=put_done.tzinfo)
            out.append((put_done - written).total_seconds() - lag)
    return out


def fixed_poll(sandbox: Sandbox, lag: float, interval: float = 2.0) -> float:
    """lego's default: sleep one interval, then poll every interval until all servers agree."""
    zone = sandbox.state.zone_for("example.com")
    assert zone is not None
    name = f"_dnsauth.poll{int(lag)}.example.com"
    sandbox.state.add_record(zone, f"_dnsauth.poll{int(lag)}", "TXT", "tok", 600)
    start = time.monotonic()
    servers = [a.split(":") for addrs in sandbox.info.nameservers.values() for a in addrs]
    while True:
        time.sleep(interval)
        if all(_serves(host, int(port), name) for host, port in servers):
            return time.monotonic() - start - lag


def _serves(host: str, port: int, name: str) -> bool:
    q = dns.message.make_query(name, dns.rdatatype.TXT)
    q.flags &= ~dns.flags.RD
    r = dns.query.udp(q, host, port=port, timeout=2)
    return any(rr.rdtype == dns.rdatatype.TXT for rr in r.answer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    log.configure(json_logs=False, level="warning")
    print(f"{'lag s':>6} {'ours median s':>14} {'ours min..max s':>16} "
          f"{'fixed 10 s sleep':>17} {'fixed 2 s poll':>15}")
    with tempfile.TemporaryDirectory() as tmp:
        for lag in LAGS:
            with Sandbox(world(lag)) as sandbox:
                overheads = ours(sandbox, Path(tmp), lag, args.trials)
                poll = fixed_poll(sandbox, lag)
            sleep10 = f"{10 - lag:.2f}" if lag <= 10 else "fails"
            print(f"{lag:6.1f} {statistics.median(overheads):14.2f} "
                  f"{min(overheads):7.2f}..{max(overheads):<7.2f} {sleep10:>17} {poll:15.2f}")
    print("figures are seconds from TXT write to PutCname success, minus the lag "
          f"(median of {args.trials} binds; target ≤ 1.5 s)")


if __name__ == "__main__":
    main()
