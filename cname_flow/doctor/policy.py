"""The minimal RAM policy cname-flow needs, as a JSON-able document (``Version: "1"``).

Action names are the RAM actions each API's reference names in its "RAM authorization" /
"Authorization information" table:

- OSS CNAME operations (ossutil ``bucket-cname`` and the CreateCnameToken, GetCnameToken,
  PutCname, ListCname, DeleteCname references; GetBucketInfo for the bucket's region):
  https://www.alibabacloud.com/help/en/oss/developer-reference/bucket-cname
- Alibaba Cloud DNS (RamCode ``alidns``): https://www.alibabacloud.com/help/en/dns/ram-authorization
  (DescribeSubDomainRecords is what the Alidns adapter lists records with).
- Certificate Management Service (RamCode ``yundun-cert``), GetUserCertificateDetail:
  https://www.alibabacloud.com/help/en/ssl-certificate/developer-reference/api-cas-2020-04-07-getusercertificatedetail

Policy grammar (``Version``, ``Statement[].Effect/Action/Resource``):
https://www.alibabacloud.com/help/en/ram/user-guide/policy-structure-and-syntax
"""

from __future__ import annotations

from typing import Any

#: What each ``cname-flow`` command calls at OSS (reads first, then writes).
OSS_READ = ("oss:GetBucketInfo", "oss:ListCname", "oss:GetCnameToken")
OSS_WRITE = ("oss:CreateCnameToken", "oss:PutCname", "oss:DeleteCname")
#: Alidns: zone lookup and record reads, then the record writes (ownership remark included).
ALIDNS_READ = ("alidns:DescribeDomains", "alidns:DescribeDomainInfo",
               "alidns:DescribeDomainRecords", "alidns:DescribeSubDomainRecords")
ALIDNS_WRITE = ("alidns:AddDomainRecord", "alidns:UpdateDomainRecord",
                "alidns:DeleteDomainRecord", "alidns:UpdateDomainRecordRemark")
#: Certificates attached by CAS id (``bind --cert-id``): read access to the certificate.
CAS_READ = ("yundun-cert:GetUserCertificateDetail",)

#: Which command needs which actions (the doctor's table and docs/doctor.md).
NEEDED_BY: dict[str, tuple[str, ...]] = {
    "bind": ("oss:GetBucketInfo", "oss:ListCname", "oss:GetCnameToken", "oss:CreateCnameToken",
             "oss:PutCname", "alidns:DescribeDomains", "alidns:DescribeDomainInfo",
             "alidns:DescribeSubDomainRecords", "alidns:AddDomainRecord",
             "alidns:UpdateDomainRecord", "alidns:UpdateDomainRecordRemark"),
    "plan / status / cert status": ("oss:GetBucketInfo", "oss:ListCname", "oss:GetCnameToken",
                                    "alidns:DescribeDomains", "alidns:DescribeSubDomainRecords"),
    "unbind / cert remove": ("oss:DeleteCname", "oss:PutCname", "alidns:DeleteDomainRecord"),
}


def minimal_policy(bucket: str | None = None, *, cas: bool = False) -> dict[str, Any]:
    """The RAM policy document granting exactly what cname-flow calls.

    Args:
        bucket: narrow the OSS statement to this bucket (``acs:oss:*:*:<bucket>``); ``None``
            grants it on every bucket (``*``).
        cas: add the Certificate Management Service read action (certificates by id).

    Returns:
        ``{"Version": "1", "Statement": [...]}``, ready for ``json.dumps``.
    """
    resource = f"acs:oss:*:*:{bucket}" if bucket else "*"
    statements: list[dict[str, Any]] = [
        {"Effect": "Allow", "Action": [*OSS_READ, *OSS_WRITE], "Resource": resource},
        {"Effect": "Allow", "Action": [*ALIDNS_READ, *ALIDNS_WRITE], "Resource": "*"},
    ]
    if cas:
        statements.append({"Effect": "Allow", "Action": list(CAS_READ), "Resource": "*"})
    return {"Version": "1", "Statement": statements}
