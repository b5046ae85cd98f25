"""In-memory fakes of the ports, for unit tests: :class:`FakeOss`, :class:`FakeDnsProvider` and
:class:`FakeChecker` (the propagation port over the fake provider).

Both count calls per API action in ``.calls`` (a ``Counter`` keyed by the real action names,
e.g. ``fake.calls["AddDomainRecord"]``) and raise scripted errors: ``fake.fail(action, error,
times=1)`` makes the next ``times`` calls of that action raise ``error`` before doing anything.
They follow the real services' rules where the flow depends on them (sources in
``docs/sandbox-oss.md`` and ``docs/sandbox-alidns.md``): same token within 72 h, ownership proof
through a TXT lookup, one bucket per domain, DomainRecordDuplicate, TXT outer quotes stripped,
TTL floor, idempotent deletes.

:class:`FakeClock` is a wall clock the test moves by hand (the ``clock`` fixture).
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from cname_flow.certs import parse_certificate_chain, sha1_fingerprint
from cname_flow.dns.base import BaseDnsProvider, RecordRef, Zone, canonical_name
from cname_flow.errors import DnsProviderError, OssError, PropagationTimeout, ZoneNotFound
from cname_flow.model import CertificateInfo, CertificateRequest, CnameEntry, CnameToken, txt_name
from cname_flow.oss.errors import oss_error_class
from cname_flow.propagation.model import NameserverAddress, PreState, Round
from cname_flow.workflow.context import RoundCallback

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The default clock of the fakes."""
    return datetime.now(UTC)


class _Script:
    """Per-action call counter and queue of scripted errors (thread-safe)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self._errors: dict[str, deque[BaseException]] = {}
        self._lock = threading.Lock()

    def fail(self, action: str, error: BaseException, times: int = 1) -> None:
        with self._lock:
            self._errors.setdefault(action, deque()).extend([error] * times)

    def hit(self, action: str) -> None:
        """Count one call of ``action``; raise the next scripted error for it, if any."""
        with self._lock:
            self.calls[action] += 1
            queue = self._errors.get(action)
            error = queue.popleft() if queue else None
        if error is not None:
            raise error


# ------------------------------------------------------------------------------------- OSS


def oss_error(code: str, status: int, message: str = "", ec: str = "") -> OssError:
    """An :class:`OssError` shaped like the adapter's mapping of that OSS answer: the class
    :func:`~cname_flow.oss.errors.oss_error_class` picks, retryable as the adapter decides."""
    cls = oss_error_class(code, status, ec)
    retryable = status >= 500 or status in {408, 429}
    return cls(
        f"OSS: {code} (HTTP {status}): {message or code}" + (f" [EC {ec}]" if ec else ""),
        service="oss",
        code=code,
        status=status,
        request_id=secrets.token_hex(12).upper(),
        retryable=retryable if cls is OssError else None,
        ec=ec,
    )


@dataclass
class _Bucket:
    tokens: dict[str, CnameToken] = field(default_factory=dict)
    cnames: dict[str, CnameEntry] = field(default_factory=dict)


class FakeOss:
    """An in-memory :class:`~cname_flow.oss.base.OssCnameApi`.

    Args:
        buckets: names of the buckets that exist.
        txt_lookup: returns the TXT values OSS would see at a name; PutCname requires the live
            token among the values at ``_dnsauth.<domain>``. ``None`` accepts any live token.
        clock: returns an aware UTC datetime (token expiry, LastModified).
        token_validity: lifetime of a CNAME token.
        max_cnames: domains per bucket (OSS: 100).
        regions: bucket → region id for GetBucketInfo (default ``"cn-hangzhou"``).
    """

    def __init__(
        self,
        buckets: Iterable[str] = ("examplebucket",),
        *,
        txt_lookup: Callable[[str], list[str]] | None = None,
        clock: Clock = utc_now,
        token_validity: timedelta = timedelta(hours=72),
        max_cnames: int = 100,
        regions: Mapping[str, str] | None = None,
    ) -> None:
        self.buckets = {name: _Bucket() for name in buckets}
        self.regions = dict(regions or {})
        self.txt_lookup = txt_lookup
        self.clock = clock
        self.token_validity = token_validity
        self.max_cnames = max_cnames
        #: Tokens minted (CreateCnameToken answers that were not the live token again).
        self.minted = 0
        self._script = _Script()
        self._lock = threading.RLock()

    @property
    def calls(self) -> Counter[str]:
        """Calls per OSS action (``"CreateCnameToken"``, ``"PutCname"``, ...)."""
        return self._script.calls

    def fail(self, action: str, error: BaseException, times: int = 1) -> None:
        """Make the next ``times`` calls of ``action`` raise ``error``."""
        self._script.fail(action, error, times)

    def bind(self, bucket: str, domain: str, certificate: CertificateInfo | None = None) -> None:
        """Preload a binding (no ownership check), e.g. a domain taken by another bucket."""
        with self._lock:
            self.buckets.setdefault(bucket, _Bucket()).cnames[domain] = CnameEntry(
                domain, "Enabled", self.clock(), certificate
            )

    # -------------------------------------------------------------------- the port
    def create_token(self, bucket: str, domain: str) -> CnameToken:
        """CreateCnameToken with the service's rules (same token while valid)."""
        self._script.hit("CreateCnameToken")
        with self._lock:
            store = self._bucket(bucket)
            if domain in store.cnames:
                raise oss_error("NoNeedCreateCnameToken", 403, ec="0018-00000302")
            self._not_bound_elsewhere(bucket, domain)
            token = self._live_token(store, domain)
            if token is None:
                self.minted += 1
                token = CnameToken(
                    bucket, domain, secrets.token_hex(16), self.clock() + self.token_validity
                )
                store.tokens[domain] = token
            return token

    def get_token(self, bucket: str, domain: str) -> CnameToken | None:
        """GetCnameToken: the live token or ``None``."""
        self._script.hit("GetCnameToken")
        with self._lock:
            return self._live_token(self._bucket(bucket), domain)

    def put_cname(
        self, bucket: str, domain: str, certificate: CertificateRequest | None = None
    ) -> str:
        """PutCname: 409 elsewhere, 403 without proof, 400 over the limit; else bind."""
        self._script.hit("PutCname")
        with self._lock:
            store = self._bucket(bucket)
            self._not_bound_elsewhere(bucket, domain)
            current = store.cnames.get(domain)
            if current is None:
                self._prove(store, domain)
                if len(store.cnames) >= self.max_cnames:
                    raise oss_error("TooManyCname", 400)
            cert = current.certificate if current else None
            if certificate is not None:
                cert = _apply_certificate(cert, certificate)
            store.cnames[domain] = CnameEntry(domain, "Enabled", self.clock(), cert)
            return secrets.token_hex(12).upper()

    def list_cnames(self, bucket: str) -> list[CnameEntry]:
        """ListCname: every bound domain of the bucket."""
        self._script.hit("ListCname")
        with self._lock:
            return list(self._bucket(bucket).cnames.values())

    def bucket_region(self, bucket: str) -> str:
        """GetBucketInfo's region (``regions``, else ``"cn-hangzhou"``); BucketNotFound for an
        unknown bucket."""
        self._script.hit("GetBucketInfo")
        with self._lock:
            self._bucket(bucket)
            return self.regions.get(bucket, "cn-hangzhou")

    def delete_cname(self, bucket: str, domain: str) -> None:
        """DeleteCname; not bound is success (the adapter maps NoSuchCname so)."""
        self._script.hit("DeleteCname")
        with self._lock:
            store = self._bucket(bucket)
            store.cnames.pop(domain, None)
            store.tokens.pop(domain, None)

    # -------------------------------------------------------------------- helpers
    def _bucket(self, name: str) -> _Bucket:
        store = self.buckets.get(name)
        if store is None:
            raise oss_error("NoSuchBucket", 404, "The specified bucket does not exist.")
        return store

    def _live_token(self, store: _Bucket, domain: str) -> CnameToken | None:
        token = store.tokens.get(domain)
        return token if token is not None and not token.expired(self.clock()) else None

    def _not_bound_elsewhere(self, bucket: str, domain: str) -> None:
        for name, other in self.buckets.items():
            if name != bucket and domain in other.cnames:
                raise oss_error("CnameAlreadyExists", 409)

    def _prove(self, store: _Bucket, domain: str) -> None:
        token = self._live_token(store, domain)
        seen = self.txt_lookup(txt_name(domain)) if self.txt_lookup else None
        if token is None or (seen is not None and token.token not in seen):
            raise oss_error("NeedVerifyDomainOwnership", 403, ec="0018-00000115")


def _apply_certificate(
    current: CertificateInfo | None, req: CertificateRequest
) -> CertificateInfo | None:
    if req.delete_certificate:
        return None
    bound = current.cert_id if current else None
    if not req.force and req.previous_cert_id != bound:
        raise oss_error("InvalidArgument", 400, "PreviousCertId mismatch", "0018-00000209")
    if req.certificate:
        leaf = parse_certificate_chain(req.certificate)[0]
        return CertificateInfo(
            "Upload",
            f"{secrets.randbelow(10**7)}-cn-hangzhou",
            "Enabled",
            sha1_fingerprint(leaf),
            leaf.not_valid_before_utc,
            leaf.not_valid_after_utc,
        )
    return CertificateInfo("CAS", req.cert_id or "", "Enabled", "", None, None)


# ------------------------------------------------------------------------------------- DNS


def dns_error(code: str, message: str = "", *, retryable: bool = False) -> DnsProviderError:
    """A :class:`DnsProviderError` shaped like the Alidns adapter's mapping of that answer."""
    return DnsProviderError(
        f"fake: {code}: {message or code}",
        service="fake",
        code=code,
        status=400,
        retryable=retryable,
    )


class FakeDnsProvider(BaseDnsProvider):
    """An in-memory :class:`~cname_flow.dns.base.DnsProvider` with Alidns' rules.

    Args:
        zones: zone apexes the account hosts.
        min_ttl: TTL floor of every zone, seconds (Alidns free edition: 600).
        nameservers: the nameservers every zone reports.
    """

    id = "fake"

    def __init__(
        self,
        zones: Iterable[str] = ("example.com", "example.com.cn"),
        *,
        min_ttl: int = 600,
        nameservers: tuple[str, ...] = ("ns1.fake.test", "ns2.fake.test"),
    ) -> None:
        super().__init__()
        self.zones = {
            canonical_name(z): Zone(canonical_name(z), f"zone-{i}", nameservers, min_ttl)
            for i, z in enumerate(zones, 1)
        }
        self.records: dict[str, RecordRef] = {}
        self._script = _Script()
        self._ids = iter(range(100001, 10**9))
        self._store = threading.RLock()

    @property
    def calls(self) -> Counter[str]:
        """Calls per Alidns action (``"AddDomainRecord"``, ``"DeleteDomainRecord"``, ...)."""
        return self._script.calls

    def fail(self, action: str, error: BaseException, times: int = 1) -> None:
        """Make the next ``times`` calls of ``action`` raise ``error``."""
        self._script.fail(action, error, times)

    def txt_values(self, name: str) -> list[str]:
        """Every TXT value at ``name`` (a handy ``FakeOss(txt_lookup=...)``)."""
        return self.values(name, "TXT")

    def values(self, name: str, rtype: str) -> list[str]:
        """Every value of type ``rtype`` at ``name``, as stored; counts no call."""
        fqdn = canonical_name(name)
        with self._store:
            return [r.value for r in self.records.values() if r.type == rtype and r.fqdn == fqdn]

    # --------------------------------------------------------------- the hooks
    def _zone_names(self) -> list[str]:
        self._script.hit("DescribeDomains")
        return list(self.zones)

    def _zone(self, zone_name: str) -> Zone:
        self._script.hit("DescribeDomainInfo")
        zone = self.zones.get(zone_name)
        if zone is None:
            raise ZoneNotFound(f"fake: no zone {zone_name}", service=self.id, code="ZoneNotFound")
        return zone

    def _records(self, zone: Zone, rr: str, rtype: str) -> list[RecordRef]:
        self._script.hit("DescribeSubDomainRecords")
        with self._store:
            return [
                r for r in self.records.values()
                if r.zone == zone.name and r.rr == rr.lower() and r.type == rtype
            ]

    def _create(self, zone: Zone, rr: str, rtype: str, value: str, ttl: int) -> str | None:
        self._script.hit("AddDomainRecord")
        self._check_ttl(zone, ttl)
        with self._store:
            same_host = [r for r in self.records.values() if r.zone == zone.name and r.rr == rr]
            if any(r.type == rtype and r.value == value for r in same_host):
                return None
            if rr != "@" and any({r.type, rtype} == {"CNAME", "TXT"} for r in same_host):
                raise dns_error("DomainRecordConflict")
            record_id = str(next(self._ids))
            self.records[record_id] = RecordRef(record_id, zone.name, rr.lower(), rtype, value, ttl)
            return record_id

    def _update(self, ref: RecordRef, value: str, ttl: int) -> bool:
        self._script.hit("UpdateDomainRecord")
        self._check_ttl(self.zones[ref.zone], ttl)
        with self._store:
            current = self.records.get(ref.record_id)
            if current is None:
                return False
            self.records[ref.record_id] = replace(current, value=value, ttl=ttl)
            return True

    def _set_remark(self, record_id: str, remark: str) -> None:
        self._script.hit("UpdateDomainRecordRemark")
        with self._store:
            current = self.records.get(record_id)
            if current is None:
                raise dns_error("DomainRecordNotBelongToUser")
            self.records[record_id] = replace(current, remark=remark)

    def _delete(self, record_id: str) -> bool:
        self._script.hit("DeleteDomainRecord")
        with self._store:
            return self.records.pop(record_id, None) is not None

    @staticmethod
    def _check_ttl(zone: Zone, ttl: int) -> None:
        if ttl < zone.min_ttl:
            raise dns_error("QuotaExceeded.TTL", f"TTL must be in {zone.min_ttl}..86400")


class FakeClock:
    """A wall clock the test moves by hand: call it for Unix seconds, :meth:`advance` to move it.

    Starts at 1,800,000,000 s (2027-01-15, UTC), so timestamps look real; nothing else moves it.
    Injected into :class:`cname_flow.sandbox.state.SandboxState` to make lags and TTLs exact.
    """

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        """The current time, Unix seconds."""
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        self.now += seconds


# ------------------------------------------------------------------------------ propagation


class FakeChecker:
    """An in-memory :class:`~cname_flow.workflow.context.PropagationPort` over a
    :class:`FakeDnsProvider`: every address serves what the provider holds, at once.

    ``waits`` counts the TXT waits (sync and async). A wait for a value the provider does not
    hold raises :class:`PropagationTimeout` at once.
    """

    def __init__(self, dns: FakeDnsProvider) -> None:
        self.dns = dns
        self.waits = 0

    def targets(self, zone: str, provider_nameservers: Sequence[str]) -> list[NameserverAddress]:
        return [NameserverAddress(host=n, address="192.0.2.1", port=53)
                for n in provider_nameservers]

    def pre_state(self, name: str, targets: Sequence[NameserverAddress]) -> PreState:
        return PreState(values=frozenset(self.dns.txt_values(name)), old_ttl=None, neg_ttl=600,
                        cname=None, serial=1)

    def wait(
        self, name: str, value: str, targets: Sequence[NameserverAddress], *,
        written_at: float | None = None, on_round: RoundCallback | None = None,
    ) -> Round:
        self.waits += 1
        return self._served(name, "TXT", value)

    async def wait_async(
        self, name: str, value: str, targets: Sequence[NameserverAddress], *,
        written_at: float | None = None, on_round: RoundCallback | None = None,
    ) -> Round:
        await asyncio.sleep(0)
        # the same answer as the blocking wait, through it: a test that replaces or breaks
        # ``wait`` changes both
        return self.wait(name, value, targets, written_at=written_at, on_round=on_round)

    def wait_cname(
        self, name: str, target: str, targets: Sequence[NameserverAddress], *,
        written_at: float | None = None, on_round: RoundCallback | None = None,
    ) -> Round:
        return self._served(name, "CNAME", target)

    def _served(self, name: str, rtype: str, value: str) -> Round:
        if value not in [v.rstrip(".") for v in self.dns.values(name, rtype)]:
            raise PropagationTimeout("not there", name=name, expected=value, table="")
        return Round(answers=(), ok=True)
