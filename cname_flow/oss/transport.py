"""A lighter HTTP transport for alibabacloud-oss-v2: the SDK's ``HttpClient`` over urllib3.

The SDK's default transport (``transport.RequestsHttpClient``) goes through a
``requests.Session``; per call that costs as much CPU again as the SDK itself (request
preparation, environment merging, adapter plumbing), and its pool keeps only 20 idle
connections per host. :class:`Urllib3HttpClient` implements the SDK's extension point
(``oss.config.Config(http_client=...)``, the ``alibabacloud_oss_v2.types.HttpClient`` ABC)
directly on one ``urllib3.PoolManager`` and keeps the default client's behaviour where it
matters: no automatic retries or redirects (the SDK's retryer decides), the same error
classes (``exceptions.RequestError`` when the exchange failed, ``exceptions.ResponseError``
on a read timeout), ``Accept-Encoding: identity`` (http.client's default when the SDK sets
none), TLS verified against the bundle requests would pick. It speaks to no proxy (neither
the environment's nor ``Config.proxy_host``) and follows no redirect (``enabled_redirect``):
:func:`http_client_for` hands out the urllib3 client only when no environment proxy applies,
else the SDK keeps its own client.
"""

from __future__ import annotations

import os
import threading
import urllib.request
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import certifi
import urllib3
from alibabacloud_oss_v2 import endpoints as oss_endpoints
from alibabacloud_oss_v2 import exceptions as oss_exc
from alibabacloud_oss_v2.types import HttpClient, HttpRequest, HttpResponse
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import ReadTimeoutError

__all__ = ["DEFAULT_MAX_CONNECTIONS", "Urllib3HttpClient", "http_client_for", "proxy_applies"]

#: Idle connections kept per host: above a batch job's worker threads, so none is discarded.
DEFAULT_MAX_CONNECTIONS = 64
#: Bytes per chunk of :meth:`_Urllib3Response.iter_bytes` (the SDK's ``DEFAULT_BLOCK_SIZE``).
DEFAULT_BLOCK_SIZE = 16 * 1024


class Urllib3HttpClient(HttpClient):  # type: ignore[misc]  # the SDK is untyped
    """The SDK's ``HttpClient`` contract over one thread-safe ``urllib3.PoolManager``.

    ``send(request, connect_timeout=, readwrite_timeout=, stream=)`` sends ``request`` once
    (keep-alive; no retries, no redirects) and returns a response whose body is already read,
    unless ``stream=True``. Per-call timeouts override the client's; other keyword arguments
    are ignored, as the SDK may pass more in later versions.

    Args:
        connect_timeout: TCP connect (and TLS handshake) timeout, seconds.
        readwrite_timeout: timeout of each socket read, seconds.
        max_connections: idle connections kept per host (also the number of host pools).
        insecure_skip_verify: do not verify the server's TLS certificate.
        block_size: default chunk size of ``iter_bytes`` on a streamed response, bytes.

    Raises (from ``send``):
        alibabacloud_oss_v2.exceptions.ResponseError: the server did not answer within the read
            timeout (wraps ``urllib3.exceptions.ReadTimeoutError``).
        alibabacloud_oss_v2.exceptions.RequestError: any other transport failure: connection
            refused or timed out, connection reset, TLS failure, malformed answer (wraps the
            ``urllib3.exceptions.HTTPError``).
    """

    def __init__(
        self,
        *,
        connect_timeout: float = 10,
        readwrite_timeout: float = 20,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        insecure_skip_verify: bool = False,
        block_size: int = DEFAULT_BLOCK_SIZE,
    ) -> None:
        self._connect_timeout = connect_timeout
        self._read_timeout = readwrite_timeout
        self._timeout = urllib3.Timeout(connect=connect_timeout, read=readwrite_timeout)
        self._max_connections = max_connections
        self._verify = not insecure_skip_verify
        self._block_size = block_size
        self._lock = threading.Lock()
        self._pool: urllib3.PoolManager | None = None

    def open(self) -> None:
        """Create the connection pool unless it exists (``send`` calls this itself)."""
        self._manager()

    def _manager(self) -> urllib3.PoolManager:
        pool = self._pool
        if pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = urllib3.PoolManager(
                        num_pools=self._max_connections,
                        maxsize=self._max_connections,
                        **_tls_options(self._verify),
                    )
                pool = self._pool
        return pool

    def close(self) -> None:
        """Close every pooled connection; a later ``send`` opens a new pool."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.clear()

    def send(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        """Send ``request`` once; see the class docstring for the keywords and errors."""
        stream = bool(kwargs.get("stream", False))
        try:
            raw = self._manager().urlopen(
                request.method,
                request.url,
                body=request.body,
                headers=request.headers,
                retries=False,
                redirect=False,
                timeout=self._timeout_for(kwargs),
                preload_content=not stream,
            )
        except ReadTimeoutError as err:
            raise oss_exc.ResponseError(error=err) from err
        except Urllib3Error as err:
            raise oss_exc.RequestError(error=err) from err
        return _Urllib3Response(request, raw, self._block_size, streamed=stream)

    def _timeout_for(self, kwargs: dict[str, Any]) -> urllib3.Timeout:
        connect = kwargs.get("connect_timeout", self._connect_timeout)
        read = kwargs.get("readwrite_timeout", self._read_timeout)
        if (connect, read) == (self._connect_timeout, self._read_timeout):
            return self._timeout
        return urllib3.Timeout(connect=connect, read=read)

    def __enter__(self) -> Urllib3HttpClient:
        self.open()
        return self

    def __exit__(self, *args: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Urllib3HttpClient max_connections={self._max_connections} verify={self._verify}>"


class _Urllib3Response(HttpResponse):  # type: ignore[misc]  # the SDK is untyped
    """The SDK's ``HttpResponse`` over a urllib3 response.

    Not streamed: the body is read and the connection back in the pool before ``send``
    returns (``is_closed`` and ``is_stream_consumed`` are True, ``content`` is set). Streamed:
    the connection is held until the body is read (``read``/``iter_bytes``) or ``close`` drops
    it; failures while reading raise ``exceptions.ResponseError``.
    """

    def __init__(
        self, request: HttpRequest, raw: urllib3.BaseHTTPResponse, block_size: int, *,
        streamed: bool,
    ) -> None:
        self._request = request
        self._raw = raw
        self._block_size = block_size
        self._content: bytes | None = None if streamed else raw.data
        self._consumed = not streamed
        self._closed = not streamed

    @property
    def request(self) -> HttpRequest:
        return self._request

    @property
    def status_code(self) -> int:
        return self._raw.status

    @property
    def headers(self) -> MutableMapping[str, str]:
        """Case-insensitive (``urllib3.HTTPHeaderDict``); repeated headers joined by ", "."""
        return self._raw.headers

    @property
    def reason(self) -> str:
        return self._raw.reason or ""

    @property
    def is_closed(self) -> bool:
        return self._closed

    @property
    def is_stream_consumed(self) -> bool:
        return self._consumed

    @property
    def content(self) -> bytes:
        if self._content is None:
            raise oss_exc.ResponseNotReadError()
        return self._content

    def read(self) -> bytes:
        """The whole (decoded) body; reads it first when streamed."""
        if self._content is None:
            if self._closed:
                raise oss_exc.StreamClosedError()
            with _reading():
                self._content = self._raw.read()
            self._finish()
        return self._content

    def iter_bytes(self, **kwargs: Any) -> Iterator[bytes]:
        """The body in chunks of ``block_size`` bytes (keyword; default the client's)."""
        size = int(kwargs.get("block_size") or self._block_size)
        if self._content is not None:
            return iter([self._content[i:i + size] for i in range(0, len(self._content), size)])
        if self._consumed:
            raise oss_exc.StreamConsumedError()
        if self._closed:
            raise oss_exc.StreamClosedError()
        return self._stream(size)

    def _stream(self, size: int) -> Iterator[bytes]:
        with _reading():
            yield from self._raw.stream(size)
        self._finish()

    def _finish(self) -> None:
        self._consumed = True
        self.close()

    def close(self) -> None:
        """Give the connection back to the pool, or drop it when the body was not read."""
        if self._closed:
            return
        self._closed = True
        if not self._consumed:
            self._raw.close()
        self._raw.release_conn()

    def __enter__(self) -> _Urllib3Response:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()

    def __repr__(self) -> str:
        content_type = self.headers.get("Content-Type", "")
        return f"<HttpResponse: {self.status_code} {self.reason}, Content-Type: {content_type}>"


@contextmanager
def _reading() -> Iterator[None]:
    """A urllib3 failure while reading a streamed body becomes ``exceptions.ResponseError``."""
    try:
        yield
    except Urllib3Error as err:
        raise oss_exc.ResponseError(error=err) from err


def _tls_options(verify: bool) -> dict[str, Any]:
    """PoolManager TLS keywords: the CA bundle requests would use, or no verification.

    Like ``requests`` (with its default ``trust_env``), ``REQUESTS_CA_BUNDLE`` or
    ``CURL_CA_BUNDLE`` (a file, or a directory of hashed certificates) replaces certifi's bundle.
    """
    if not verify:
        return {"cert_reqs": "CERT_NONE", "assert_hostname": False}
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle and os.path.isdir(bundle):
        return {"cert_reqs": "CERT_REQUIRED", "ca_cert_dir": bundle}
    return {"cert_reqs": "CERT_REQUIRED", "ca_certs": bundle or certifi.where()}


def proxy_applies(url: str) -> bool:
    """Whether the environment routes ``url`` through a proxy, as ``requests`` would.

    The standard library decides: ``urllib.request.getproxies()`` (``HTTP_PROXY``,
    ``HTTPS_PROXY``, ``ALL_PROXY``, either case; the system settings on macOS and Windows)
    must name a proxy for the URL's scheme, and ``urllib.request.proxy_bypass()``
    (``NO_PROXY``) must not exempt its host name (without the port, as ``requests`` asks).
    ``requests`` uses the same two functions, plus its own ``NO_PROXY`` matching (CIDR blocks,
    ``name:port`` entries) that can only exempt more hosts, so a URL said to be proxied here
    might in fact go direct: that error costs speed, never the proxy.
    """
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(parts.hostname or "")


def http_client_for(
    endpoint: str | None,
    *,
    region: str,
    connect_timeout_s: float,
    read_timeout_s: float,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
) -> Urllib3HttpClient | None:
    """The transport for an ``AlibabaOss`` client: urllib3 unless a proxy applies.

    The proxy check (:func:`proxy_applies`) runs once, now, on the endpoint's scheme and host:
    ``endpoint`` itself (``https://`` when it has no scheme, like the SDK), or for ``None`` the
    SDK's regional endpoint ``https://oss-<region>.aliyuncs.com`` (built by the SDK's own
    ``endpoints.from_region``). Buckets are addressed as ``<bucket>.<that host>``, which every
    ``NO_PROXY`` suffix matching the regional host also matches. Proxy variables changed after
    this call are not seen (``requests`` would read them on every call).

    Args:
        endpoint: the ``AlibabaOss`` endpoint argument (``None`` = production).
        region: OSS region id, for the production endpoint.
        connect_timeout_s: TCP connect timeout, seconds.
        read_timeout_s: socket read timeout, seconds.
        max_connections: idle connections kept per host.

    Returns:
        A :class:`Urllib3HttpClient`, or ``None`` when a proxy applies: the caller then leaves
        ``Config.http_client`` unset and the SDK builds its ``requests`` client, which honours
        the proxy.
    """
    if endpoint:
        url = endpoint if "://" in endpoint else f"https://{endpoint}"
    else:
        url = oss_endpoints.from_region(region, False, "default")
    if proxy_applies(url):
        return None
    return Urllib3HttpClient(
        connect_timeout=connect_timeout_s,
        readwrite_timeout=read_timeout_s,
        max_connections=max_connections,
    )
