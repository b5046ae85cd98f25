"""Clock skew against OSS: the ``Date`` header of an anonymous request to the endpoint.

OSS refuses a signed request whose time is more than 15 minutes from its own with 403
``RequestTimeTooSkewed`` (OSS error codes, "0002-00000078";
https://www.alibabacloud.com/help/en/oss/support/0002-00000078). Every OSS answer, an error
included, carries ``Date`` (RFC 9110 §6.6.1), so one anonymous ``GET /`` (no credentials, no
side effect; OSS answers 403 AccessDenied or a listing) is enough to measure the distance.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime

import urllib3

#: OSS's hard limit, seconds (RequestTimeTooSkewed beyond it).
REFUSED_SKEW_S = 15 * 60
#: The doctor warns beyond this, seconds: a third of the way to refusal.
WARN_SKEW_S = 5 * 60


class ClockUnavailable(Exception):
    """The endpoint could not be reached, or its answer had no usable ``Date``."""


def endpoint_url(endpoint: str | None, region: str) -> str:
    """The URL to ask: ``oss.endpoint`` (a bare host gets ``https://``), else the region's
    public production endpoint ``https://oss-<region>.aliyuncs.com``."""
    if not endpoint:
        return f"https://oss-{region}.aliyuncs.com/"
    url = endpoint if "://" in endpoint else f"https://{endpoint}"
    return url.rstrip("/") + "/"


def server_skew(url: str, *, timeout_s: float = 5.0,
                now: Callable[[], float] = time.time) -> float:
    """Seconds the server's clock is ahead of ours (negative: behind), from its ``Date``.

    The local time taken is the middle of the request, so the round trip is not counted as
    skew; ``Date`` has a one-second resolution, so |result| < 1 means "in step".

    Raises:
        ClockUnavailable: no answer, or no parsable ``Date`` header.
    """
    pool = urllib3.PoolManager(timeout=urllib3.Timeout(total=timeout_s), retries=False)
    started = now()
    try:
        reply = pool.request("GET", url, redirect=False, preload_content=True)
    except urllib3.exceptions.HTTPError as exc:
        raise ClockUnavailable(f"{url}: {type(exc).__name__}") from exc
    finally:
        pool.clear()
    local = (started + now()) / 2
    raw = reply.headers.get("Date")
    if not raw:
        raise ClockUnavailable(f"{url} answered HTTP {reply.status} without a Date header")
    try:
        server = parsedate_to_datetime(raw).timestamp()
    except (TypeError, ValueError) as exc:
        raise ClockUnavailable(f"{url}: unreadable Date {raw!r}") from exc
    return server - local
