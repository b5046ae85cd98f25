"""The one validation pass of user-given names and options, before anything reaches the cloud.

Every :class:`~cname_flow.model.Binding` built from user input (``bind``/``plan`` options, the
library's ``make_binding``, a manifest row, ``unbind``/``forget``/``cert remove``) goes through
:func:`build_binding`, which checks every field at once and raises
:class:`~cname_flow.errors.InputError` (exit 2) before a token is minted, a record written or a
journal key created:

- the domain: :func:`~cname_flow.model.normalize_domain` (RFC 1035/1123 host names, UTS 46 /
  IDNA 2008 with the ``idna`` library); for destructive commands also :func:`visible_domain`;
- the bucket: :func:`check_bucket` (the OSS bucket naming rules);
- the region: :func:`check_region` (the shape of OSS region ids);
- the ``--route`` CNAME target: :func:`check_route_target` (a host name, not a URL);
- the certificate: :func:`check_certificate_spec` (PEM files or a CAS id, never both).
"""

from __future__ import annotations

import re
from dataclasses import replace

from cname_flow.errors import InputError
from cname_flow.model import Binding, BindingOptions, CertificateSpec, normalize_domain

__all__ = [
    "build_binding",
    "check_bucket",
    "check_certificate_spec",
    "check_region",
    "check_route_target",
]

#: OSS bucket names: 3-63 characters, lowercase letters, digits and hyphens, starting and ending
#: with a letter or a digit
#: (https://www.alibabacloud.com/help/en/oss/user-guide/bucket-naming-conventions).
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")

#: OSS region ids: lowercase words of letters and digits joined by single hyphens, the first all
#: letters (``cn-hangzhou``, ``ap-southeast-1``, ``rg-china-mainland``). A shape, not a list, so
#: a region opened tomorrow is accepted; at most 59 characters, as ``oss-<region>`` is a DNS
#: label of the bucket's endpoint (RFC 1035: 63).
_REGION = re.compile(r"^[a-z]{2,}(-[a-z0-9]+)+$")
_REGION_MAX = 59


def check_bucket(raw: str) -> str:
    """``raw`` if it is a name OSS allows for a bucket.

    Implements the OSS bucket naming rules
    (https://www.alibabacloud.com/help/en/oss/user-guide/bucket-naming-conventions): 3 to 63
    characters; lowercase letters, digits and hyphens only; the first and last a letter or a
    digit. Nothing is changed (an uppercase name is refused, not lowered: it names no bucket).

    Raises:
        InputError: the name breaks a rule; the message says which.
    """
    if _BUCKET.match(raw):
        return raw
    if not 3 <= len(raw) <= 63:
        why = f"{len(raw)} characters; OSS bucket names have 3 to 63"
    elif bad := sorted(set(re.sub(r"[a-z0-9-]", "", raw))):
        why = "OSS bucket names hold only lowercase letters, digits and hyphens, not " + \
            " ".join(repr(c) for c in bad)
    else:
        why = "OSS bucket names start and end with a lowercase letter or a digit"
    raise InputError(f"bucket {raw!r}: {why}", hint="give the bucket's name as OSS shows it")


def check_region(raw: str) -> str:
    """``raw`` if it has the shape of an OSS region id (``cn-hangzhou``, ``ap-southeast-1``,
    ``us-west-1``, ``eu-central-1``, ``cn-hongkong``, ``rg-china-mainland``).

    The shape (https://www.alibabacloud.com/help/en/oss/user-guide/regions-and-endpoints):
    lowercase letters, digits and single hyphens, at least two hyphen-joined words, the first
    all letters, at most 59 characters (``oss-<region>`` is one DNS label, RFC 1035). No list
    of regions is kept: OSS itself says whether the bucket is there (GetBucketInfo).

    Raises:
        InputError: not a region id.
    """
    if _REGION.match(raw) and len(raw) <= _REGION_MAX:
        return raw
    raise InputError(f"region {raw!r}: not an OSS region id",
                     hint="region ids look like cn-hangzhou or ap-southeast-1")


def check_route_target(raw: str) -> str:
    """The ``--route`` CNAME target as a lowercase A-label host name without a trailing dot.

    A CNAME's RDATA is a domain name (RFC 1035 §3.3.1); cname-flow points it at a host (RFC
    1123 §2.1 labels, IDNA 2008 via :func:`~cname_flow.model.normalize_domain`) with at least
    two labels: ``examplebucket.oss-cn-hangzhou.aliyuncs.com`` or a CDN's host name.

    Raises:
        InputError: a URL (scheme, path, port, user info), an IP address, a single label or any
            other name :func:`~cname_flow.model.normalize_domain` refuses.
    """
    text = raw.strip()
    hint = "give a host name such as examplebucket.oss-cn-hangzhou.aliyuncs.com"
    for mark, what in (("://", "a scheme"), ("/", "a path"), ("@", "user info"),
                       ("?", "a query"), ("#", "a fragment")):
        if mark in text:
            raise InputError(f"route target {raw!r}: a host name, not a URL ({what})", hint=hint)
    if ":" in text and text.count(":") == 1:
        raise InputError(f"route target {raw!r}: a host name takes no port", hint=hint)
    try:
        return normalize_domain(text)
    except InputError as exc:
        raise InputError(exc.message.replace("domain", "route target", 1),
                         hint=hint) from exc


def check_certificate_spec(spec: CertificateSpec | None) -> CertificateSpec | None:
    """``spec`` if it names exactly one certificate: PEM files (both) or a CAS id.

    PutCname's CertificateConfiguration takes a ``CertId`` or a ``Certificate`` +
    ``PrivateKey``, not both (OSS API, PutCname).

    Raises:
        InputError: a CAS id together with files, or one file without the other.
    """
    if spec is None:
        return None
    files = spec.cert_file is not None or spec.key_file is not None
    if spec.cert_id is not None and files:
        raise InputError("give --cert-id or --cert-file with --key-file, not both",
                         hint="a CAS certificate id already names the certificate and its key")
    if spec.cert_id is None and not (spec.cert_file and spec.key_file):
        raise InputError("a certificate needs both --cert-file and --key-file, or --cert-id")
    return spec


def build_binding(
    domain: str, *, bucket: str, region: str = "", options: BindingOptions | None = None,
    certificate: CertificateSpec | None = None,
) -> Binding:
    """A :class:`~cname_flow.model.Binding` from user input, every field checked first.

    Args:
        domain: the custom domain as given (Unicode or A-label, any case, one trailing dot).
        bucket: the OSS bucket's name; region: its region id, or ``""`` for "the bucket's own".
        options: the route / TXT / certificate options (their ``route_target`` is checked and
            normalised); certificate: PEM files or a CAS id.

    Raises:
        InputError: the first field that is wrong (domain, bucket, region, route target,
            certificate), with what is wrong with it.
    """
    name = normalize_domain(domain)
    check_bucket(bucket)
    if region:
        check_region(region)
    options = options or BindingOptions()
    if options.route_target:
        target = check_route_target(options.route_target)
        if target == name:
            raise InputError(f"route target {options.route_target!r}: a CNAME from {name} to "
                             "itself", hint="point --route-target at another host")
        options = replace(options, route_target=target)
    return Binding(domain=name, bucket=bucket, region=region,
                   certificate=check_certificate_spec(certificate), options=options)
