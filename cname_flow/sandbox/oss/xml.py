"""XML of the sandbox's OSS API: request bodies parsed with defusedxml, answers rendered.

Shapes follow the operations' API references (listed in ``docs/sandbox-oss.md``) and the
``alibabacloud_oss_v2`` models
(``models/bucket_cname.py``, ``models/service.py``, ``models/bucket_basic.py``): no namespace
anywhere, no ``<?xml?>`` needed on success bodies, errors carry the declaration.
"""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.utils import formatdate

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from cname_flow.sandbox.state import BoundCertificate, Bucket, CnameRecord, TokenRecord

#: Largest request body accepted, bytes.
MAX_BODY_BYTES = 64 * 1024

_XML_DECL = '<?xml version="1.0" encoding="UTF-8"?>\n'
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class OssErrorResponse(Exception):
    """One OSS error answer.

    Attributes:
        status: HTTP status.
        code: OSS error code.
        message: text for ``<Message>`` (never a secret).
        ec: OSS EC (``"0018-00000115"``) when known, else None.
        fields: extra ``<Error>`` children.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        ec: str | None = None,
        fields: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.ec = ec
        self.fields = dict(fields or {})


class MalformedXml(ValueError):
    """The body is not the XML document the operation expects."""


@dataclass(frozen=True, slots=True)
class CertificateConfiguration:
    """PutCname's ``<CertificateConfiguration>``; ``private_key`` is hidden from ``repr``."""

    cert_id: str | None = None
    certificate: str | None = None
    private_key: str | None = None
    previous_cert_id: str | None = None
    force: bool = False
    delete_certificate: bool = False
    #: ``<Force>`` was present, whatever its value.
    force_sent: bool = False

    def __repr__(self) -> str:
        return (
            f"CertificateConfiguration(cert_id={self.cert_id!r}, "
            f"certificate={'<pem>' if self.certificate else None}, "
            f"previous_cert_id={self.previous_cert_id!r}, force={self.force}, "
            f"delete_certificate={self.delete_certificate})"
        )


@dataclass(frozen=True, slots=True)
class CnameConfiguration:
    """A ``<BucketCnameConfiguration>`` body: the raw domain text and optional certificate."""

    domain: str
    certificate: CertificateConfiguration | None = None
    #: ``<Cname><IsWildCard>`` (PutCname): True/False as sent, None when absent.
    is_wildcard: bool | None = None


# -- parsing ----------------------------------------------------------------------------------


def parse_xml(body: bytes, root_tag: str) -> ET.Element:
    """Parse ``body`` safely (no DTD entities, no external references) and check the root tag.

    Raises:
        MalformedXml: oversized, not well-formed, forbidden constructs, or another root tag.
    """
    if len(body) > MAX_BODY_BYTES:
        raise MalformedXml(f"body larger than {MAX_BODY_BYTES} bytes")
    try:
        root: ET.Element = SafeET.fromstring(body, forbid_dtd=True)
    except (ET.ParseError, DefusedXmlException, ValueError) as exc:
        raise MalformedXml("the XML you provided was not well-formed") from exc
    if root.tag != root_tag:
        raise MalformedXml(f"root element must be {root_tag}")
    return root


def parse_cname_configuration(body: bytes) -> CnameConfiguration:
    """Parse a Create/Put/DeleteCname body (``BucketCnameConfiguration``, as PutCname documents it).

    Raises:
        MalformedXml: bad XML, no ``Cname/Domain``, or ``DeleteCertificate`` with ``Force``
            whatever its value (terraform-provider-alicloud commit 6e2693809).
    """
    cname = parse_xml(body, "BucketCnameConfiguration").find("Cname")
    domain = _text(cname, "Domain") if cname is not None else None
    if cname is None or not domain:
        raise MalformedXml("BucketCnameConfiguration/Cname/Domain is required")
    node = cname.find("CertificateConfiguration")
    wild = _text(cname, "IsWildCard")
    return CnameConfiguration(domain, None if node is None else _certificate(node),
                              None if wild is None else wild.lower() == "true")


def _certificate(node: ET.Element) -> CertificateConfiguration:
    conf = CertificateConfiguration(
        cert_id=_text(node, "CertId") or None,
        certificate=_text(node, "Certificate") or None,
        private_key=_text(node, "PrivateKey") or None,
        previous_cert_id=_text(node, "PreviousCertId") or None,
        force=_flag(node, "Force"),
        delete_certificate=_flag(node, "DeleteCertificate"),
        force_sent=node.find("Force") is not None,
    )
    if conf.delete_certificate and conf.force_sent:
        raise MalformedXml("DeleteCertificate cannot be combined with Force")
    return conf


def _text(node: ET.Element, tag: str) -> str | None:
    child = node.find(tag)
    return None if child is None else (child.text or "").strip()


def _flag(node: ET.Element, tag: str) -> bool:
    return (_text(node, tag) or "").lower() == "true"


# -- rendering --------------------------------------------------------------------------------


def xml_text(value: str) -> str:
    """``value`` without characters XML 1.0 cannot carry (so echoed input never breaks a body)."""
    return _NOT_XML_CHAR.sub("", value)


def _element(tag: str, children: Mapping[str, str | None]) -> ET.Element:
    node = ET.Element(tag)
    for name, value in children.items():
        if value is not None:
            ET.SubElement(node, name).text = xml_text(value)
    return node


def _render(root: ET.Element, declaration: bool = False) -> bytes:
    text = ET.tostring(root, encoding="unicode")
    return ((_XML_DECL if declaration else "") + text).encode("utf-8")


def error_body(
    code: str,
    message: str,
    request_id: str,
    host_id: str,
    ec: str | None,
    fields: Mapping[str, str] | None = None,
) -> bytes:
    """An OSS ``<Error>`` document, with the XML declaration.

    Fields as in https://help.aliyun.com/en/oss/user-guide/overview-14 (OSS error responses).
    """
    children: dict[str, str | None] = {
        "Code": code,
        "Message": message,
        "RequestId": request_id,
        "HostId": host_id,
        "EC": ec,
    }
    children.update(fields or {})
    if ec:
        children["RecommendDoc"] = f"https://api.aliyun.com/troubleshoot?q={ec}"
    return _render(_element("Error", children), declaration=True)


def cname_token_body(bucket: str, token: TokenRecord) -> bytes:
    """``<CnameToken>`` for Create/GetCnameToken; ExpireTime is RFC 1123 GMT."""
    return _render(
        _element(
            "CnameToken",
            {
                "Bucket": bucket,
                "Cname": token.domain.removeprefix("*."),  # a wildcard: its base domain
                "Token": token.token,
                "ExpireTime": http_date(token.expires_at),
            },
        )
    )


def list_cname_body(bucket: Bucket) -> bytes:
    """``<ListCnameResult>``: Bucket, Owner, then one ``<Cname>`` per bound domain (sorted)."""
    root = _element("ListCnameResult", {"Bucket": bucket.name, "Owner": bucket.owner})
    for record in sorted(bucket.cnames.values(), key=lambda r: r.domain):
        root.append(_cname_element(record))
    return _render(root)


def _cname_element(record: CnameRecord) -> ET.Element:
    # ListCname: a wildcard entry gives its base domain (no ``*.``) with IsWildCard=true; an
    # exact entry carries no IsWildCard (https://help.aliyun.com/en/oss/developer-reference/listcname)
    wildcard = record.domain.startswith("*.")
    fields = {
        "Domain": record.domain.removeprefix("*."),
        "LastModified": iso_ms(record.last_modified),
        "Status": record.status,
    }
    if wildcard:
        fields["IsWildCard"] = "true"
    node = _element("Cname", fields)
    if record.certificate is not None:
        node.append(_certificate_element(record.certificate))
    return node


def _certificate_element(cert: BoundCertificate) -> ET.Element:
    return _element(
        "Certificate",
        {
            "Type": cert.type,
            "CertId": cert.cert_id,
            "Status": cert.status,
            "CreationDate": http_date(cert.creation_date),
            "Fingerprint": cert.fingerprint,
            "ValidStartDate": cert_date(cert.valid_start),
            "ValidEndDate": cert_date(cert.valid_end),
        },
    )


def list_buckets_body(
    owner: str,
    buckets: Iterable[Bucket],
    prefix: str,
    marker: str,
    max_keys: int,
    next_marker: str | None,
) -> bytes:
    """``<ListAllMyBucketsResult>`` as ``ListBucketsResult`` parses it (``Buckets/Bucket``)."""
    root = _element(
        "ListAllMyBucketsResult",
        {
            "Prefix": prefix,
            "Marker": marker,
            "MaxKeys": str(max_keys),
            "IsTruncated": "true" if next_marker else "false",
            "NextMarker": next_marker,
        },
    )
    root.append(_element("Owner", {"ID": owner, "DisplayName": owner}))
    container = ET.SubElement(root, "Buckets")
    for bucket in buckets:
        container.append(_element("Bucket", _bucket_fields(bucket)))
    return _render(root)


def _bucket_fields(bucket: Bucket) -> dict[str, str | None]:
    return {
        "Name": bucket.name,
        "Location": f"oss-{bucket.region}",
        "CreationDate": iso_ms(bucket.created_at),
        "ExtranetEndpoint": f"oss-{bucket.region}.aliyuncs.com",
        "IntranetEndpoint": f"oss-{bucket.region}-internal.aliyuncs.com",
        "Region": bucket.region,
        "StorageClass": "Standard",
    }


def bucket_info_body(bucket: Bucket) -> bytes:
    """``<BucketInfo><Bucket>…</Bucket></BucketInfo>`` as ``GetBucketInfoResult`` parses it."""
    fields = _bucket_fields(bucket)
    del fields["Region"]
    fields["DataRedundancyType"] = "LRS"
    node = _element("Bucket", fields)
    node.append(_element("Owner", {"ID": bucket.owner, "DisplayName": bucket.owner}))
    node.append(_element("AccessControlList", {"Grant": "private"}))
    root = ET.Element("BucketInfo")
    root.append(node)
    return _render(root)


# -- dates ------------------------------------------------------------------------------------


def http_date(t: float) -> str:
    """RFC 1123 GMT, e.g. ``Wed, 23 Feb 2022 21:16:37 GMT``."""
    return formatdate(t, usegmt=True)


def iso_ms(t: float) -> str:
    """ISO 8601 UTC with milliseconds, e.g. ``2021-09-15T02:35:07.000Z``."""
    seconds, ms = divmod(int(t * 1000), 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{ms:03d}Z"


def cert_date(t: float) -> str:
    """ListCname's certificate date, day not zero-padded: ``Mon, 4 May 2048 10:14:51 GMT``."""
    g = time.gmtime(t)
    clock = time.strftime("%H:%M:%S", g)
    return f"{_DAYS[g.tm_wday]}, {g.tm_mday} {_MONTHS[g.tm_mon - 1]} {g.tm_year} {clock} GMT"
