"""The one validation pass of user-given names and options, before anything reaches the cloud.

Every :class:`~cname_flow.model.Binding` built from user input (``bind``/``plan`` options, the
library's ``make_binding``, a manifest row, ``unbind``/``forget``/``cert remove``) goes through
:func:`build_binding`, which checks every field at once and raises
:class:`~cname_flow.errors.InputError` (exit 2) before a token is minted, a record written or a
journal key created:

- the domain: :func:`~cname_flow.model.normalize_domain` (RFC 1035/1123 host names, UTS 46 /
  IDNA 2008 with the ``idna`` library); for destructive commands (``unbind``, ``forget``,
  ``cert remove``) :func:`visible_domain` instead, which acts only on the name the user can
  see: no character removed or mapped beyond case folding, no mixed-script label unless given
  as an A-label (:func:`hidden_changes`, :func:`mixed_scripts`);
- the bucket: :func:`check_bucket` (the OSS bucket naming rules);
- the region: :func:`check_region` (the shape of OSS region ids);
- the ``--route`` CNAME target: :func:`check_route_target` (a host name, not a URL);
- a host to connect to (a configured endpoint, a nameserver): :func:`check_host`;
- the certificate: :func:`check_certificate_spec` (PEM files or a CAS id, never both).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import replace

import idna

from cname_flow.errors import InputError
from cname_flow.model import Binding, BindingOptions, CertificateSpec, normalize_domain

__all__ = [
    "build_binding",
    "check_bindable",
    "check_bucket",
    "check_certificate_spec",
    "check_host",
    "check_region",
    "check_route_target",
    "code_point",
    "domain_warnings",
    "hidden_changes",
    "mixed_scripts",
    "visible_domain",
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

#: A host name label (RFC 1123 §2.1: letters, digits, inner hyphens; 1 to 63 characters).
_HOST_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")

#: Whitespace a shell or a copied line leaves around a name; stripped without a word.
_EDGE = " \t\r\n"

#: Scripts UTS 39 ("highly restrictive", section 5.2) lets share one label; any other mix of two
#: or more scripts is flagged. Keys are the first word of the Unicode character names.
_COMBINABLE = (frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
               frozenset({"LATIN", "HAN", "BOPOMOFO"}),
               frozenset({"LATIN", "HAN", "HANGUL"}))
_SCRIPT_ALIASES = {"CJK": "HAN", "IDEOGRAPHIC": "HAN"}


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


def check_host(raw: str) -> str:
    """``raw`` lowercased without a trailing dot, if it is a host name to connect to: a
    configured endpoint's host or a nameserver's name.

    RFC 1123 §2.1 host names: labels of letters, digits and inner hyphens, 1 to 63
    characters each, at most 253 in all; a single label (``localhost``, a container's name) is
    allowed, an underscore is not. IP addresses are not host names: the callers that take
    one check it first.

    Raises:
        InputError: not a host name; the message names the first bad label.
    """
    name = raw.lower()
    name = name[:-1] if name.endswith(".") else name
    if not 1 <= len(name) <= 253:
        raise InputError(f"host {raw!r}: {len(name)} characters; host names have 1 to 253")
    for label in name.split("."):
        if not _HOST_LABEL.match(label):
            raise InputError(f"host {raw!r}: label {label!r} is not a host name label",
                             hint="letters, digits and inner hyphens (RFC 1123), no underscore")
    return name


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
    certificate: CertificateSpec | None = None, destructive: bool = False,
) -> Binding:
    """A :class:`~cname_flow.model.Binding` from user input, every field checked first.

    Args:
        domain: the custom domain as given (Unicode or A-label, any case, one trailing dot).
        bucket: the OSS bucket's name; region: its region id, or ``""`` for "the bucket's own".
        options: the route / TXT / certificate options (their ``route_target`` is checked and
            normalised); certificate: PEM files or a CAS id.
        destructive: the binding is for ``unbind``, ``forget`` or ``cert remove``: the domain
            must pass :func:`visible_domain`, not only :func:`~cname_flow.model.normalize_domain`.

    Raises:
        InputError: the first field that is wrong (domain, bucket, region, route target,
            certificate), with what is wrong with it.
    """
    # A leading ``*.`` asks for a wildcard binding (Agentic Buckets only, PutCname reference):
    # the rest is checked as any domain and the adapter sends it with ``wildcard=true``.
    wild, rest = (True, domain.strip()[2:]) if domain.strip().startswith("*.") else (False, domain)
    name = visible_domain(rest) if destructive else check_bindable(normalize_domain(rest))
    name = f"*.{name}" if wild else name
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


#: Domains OSS reserves: each of them and every name under it is refused as a custom domain
#: (https://help.aliyun.com/zh/oss/support/0018-00000401).
OSS_RESERVED = ("aliyuncs.com", "aliyun.com", "aliyun-inc.com", "taobao.com", "taobaocdn.com")


def check_bindable(name: str) -> str:
    """``name`` (a normalised A-label domain) when OSS can bind it, else InputError (exit 2).

    OSS refuses the reserved domains :data:`OSS_RESERVED` and the names under them, and host
    names of 3 characters or fewer ("Entire hostname must be longer than 3 ASCII characters.",
    https://help.aliyun.com/zh/oss/support/0017-00000249); refusing them here spares a token and
    a TXT record that could never serve.

    Raises:
        InputError: a reserved domain, or 3 characters or fewer.
    """
    reserved = next((s for s in OSS_RESERVED if name == s or name.endswith("." + s)), None)
    if reserved is not None:
        raise InputError(f"domain {name!r}: OSS reserves {reserved} and the names under it; "
                         "they cannot be custom domains", hint="bind a domain of your own")
    if len(name) <= 3:
        raise InputError(f"domain {name!r}: OSS needs a host name longer than 3 characters")
    return name


def code_point(char: str) -> str:
    """``"U+200B ZERO WIDTH SPACE"``: a character as the Unicode standard names it (the
    general category, e.g. ``<Cc>``, for a character without a name)."""
    name = unicodedata.name(char, "") or f"<{unicodedata.category(char)}>"
    return f"U+{ord(char):04X} {name}"


def hidden_changes(raw: str) -> list[str]:
    """What normalising ``raw`` would do to it beyond what the user can see.

    Allowed, and not reported: ASCII whitespace around the name, one trailing dot, case
    folding (a character whose UTS 46 mapping is its lowercase), canonical composition (NFC:
    the same text by definition) and A-label / U-label conversion. Reported: every character
    UTS 46 (non-transitional, https://www.unicode.org/reports/tr46/) removes (``U+200B``,
    ``U+00AD``...) or maps to something else (fullwidth letters, ``。`` for ``.``, ``U+3000``),
    and every invisible format character (category Cf, e.g. ``U+200C``) that IDNA 2008 keeps.
    Characters UTS 46 disallows are left to :func:`~cname_flow.model.normalize_domain`.

    Args:
        raw: the name as the user gave it.

    Returns:
        One sentence per character, in input order, each naming the code point and its
        1-based position in ``raw``: ``"U+200B ZERO WIDTH SPACE at position 8 is removed"``.
    """
    lead = len(raw) - len(raw.lstrip(_EDGE))
    text = raw.strip(_EDGE)
    found: list[str] = []
    for i, char in enumerate(text):
        if char.isascii():
            continue
        where = f"{code_point(char)} at position {lead + i + 1}"
        try:
            mapped = idna.uts46_remap(char, std3_rules=False, transitional=False)
        except UnicodeError:
            continue  # disallowed: normalize_domain refuses the name
        if not mapped:
            found.append(f"{where} is removed")
        elif mapped not in (char, char.lower()):
            found.append(f"{where} becomes {mapped!r}")
        elif unicodedata.category(char) == "Cf":
            found.append(f"{where} is invisible")
    return found


def _script(char: str) -> str | None:
    """The script of a letter, from its Unicode name (``LATIN``, ``CYRILLIC``, ``HAN``...);
    None for characters of no script here (ASCII digits and hyphen, combining marks, joiners,
    punctuation such as U+00B7 MIDDLE DOT)."""
    if char.isascii():
        return "LATIN" if char.isalpha() else None
    name = unicodedata.name(char, "")
    category = unicodedata.category(char)
    if not name or name.startswith("COMBINING ") or category in ("Cf", "Po", "Zs"):
        return None
    word = name.split()[0].split("-")[0]
    return _SCRIPT_ALIASES.get(word, word)


def mixed_scripts(name: str) -> list[str]:
    """Every label of ``name`` that mixes scripts, as UTS 39 flags it.

    A label may hold one script, or one of the combinations UTS 39's highly restrictive
    profile allows (https://www.unicode.org/reports/tr39/#Restriction_Level_Detection): Latin +
    Han + Hiragana + Katakana (Japanese), Latin + Han + Bopomofo, Latin + Han + Hangul. Latin +
    Cyrillic (``pаypal`` with a Cyrillic ``а``) or Latin + Greek is flagged. The script of a
    character is read from its Unicode name (``unicodedata``); ASCII digits, the hyphen,
    combining marks and joiners belong to none.

    Args:
        name: a domain as :func:`~cname_flow.model.normalize_domain` returns it (A-labels).

    Returns:
        One sentence per flagged label, naming its scripts and the first code point of each
        script after the first: ``"label 'pаypal' mixes LATIN and CYRILLIC (U+0430 CYRILLIC
        SMALL LETTER A at position 2)"``; empty for a single-script name.
    """
    found: list[str] = []
    for alabel in name.split("."):
        label = _shown(alabel)
        first: dict[str, tuple[int, str]] = {}
        for i, char in enumerate(label):
            script = _script(char)
            if script is not None and script not in first:
                first[script] = (i, char)
        scripts = frozenset(first)
        if len(scripts) < 2 or any(scripts <= allowed for allowed in _COMBINABLE):
            continue
        order = sorted(first, key=lambda s: first[s][0])
        where = ", ".join(f"{code_point(first[s][1])} at position {first[s][0] + 1}"
                          for s in order[1:])
        found.append(f"label {label!r} mixes {' and '.join(order)} ({where})")
    return found


def visible_domain(raw: str) -> str:
    """The domain a destructive command (``unbind``, ``forget``, ``cert remove``) may act on:
    :func:`~cname_flow.model.normalize_domain` of ``raw``, only when it is the name the user
    can see.

    Refused: a name :func:`hidden_changes` reports anything for (``example\\u200b.com``
    normalises to ``example.com``: unbinding that would act on a name the user did not type),
    and a name with a label typed in Unicode that :func:`mixed_scripts` flags (``pаypal.com``
    with a Cyrillic ``а``); the same label given as an A-label (``xn--pypal-4ve.com``) is
    accepted, as its form is unambiguous.

    Returns:
        The A-label name; ``idna.encode`` (IDNA 2008, no UTS 46 mapping) of ``raw`` stripped,
        lowercased character by character and composed (NFC) gives the same name.

    Raises:
        InputError: what :func:`~cname_flow.model.normalize_domain` refuses; a hidden change,
            naming the code point and its position; a mixed-script Unicode label.
    """
    name = normalize_domain(raw)
    hidden = hidden_changes(raw)
    if hidden:
        more = f"; and {len(hidden) - 3} more" if len(hidden) > 3 else ""
        raise InputError(f"domain {raw!r}: {'; '.join(hidden[:3])}{more}; destructive commands "
                         "act only on the name you can see",
                         hint=f"it would act on {name}; type that if you mean it")
    text = raw.strip(_EDGE)
    typed = text[:-1] if text.endswith(".") else text
    unicode_labels = {i for i, label in enumerate(typed.split(".")) if not label.isascii()}
    for i, alabel in enumerate(name.split(".")):
        flagged = mixed_scripts(alabel) if i in unicode_labels else []
        if flagged:
            raise InputError(f"domain {raw!r}: {flagged[0]}; refused for a destructive command",
                             hint=f"if you mean it, give the A-label form: {name}")
    return name


def domain_warnings(raw: str) -> list[str]:
    """What :func:`visible_domain` would refuse in ``raw``, as warnings for a command that
    creates rather than destroys (``bind``): hidden changes and mixed-script labels.

    Raises:
        InputError: what :func:`~cname_flow.model.normalize_domain` refuses.
    """
    raw = raw.strip()[2:] if raw.strip().startswith("*.") else raw  # a wildcard's base
    return hidden_changes(raw) + mixed_scripts(normalize_domain(raw))


def _shown(name: str) -> str:
    """The name in U-labels, as the user would type it (A-labels that do not decode are kept)."""
    try:
        return idna.decode(name)
    except UnicodeError:
        return name
