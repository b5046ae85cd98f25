"""OSS answers whose meaning has its own class leave the adapter's mapping as that class."""

from __future__ import annotations

import pytest

from cname_flow.errors import (
    CertificateConflict,
    OssCertificateConflict,
    OssError,
    OssThrottled,
    Throttled,
)
from cname_flow.oss import errors as oss_errors
from cname_flow.oss.errors import map_oss_error
from tests.unit.test_errors import service_error


def test_oss_previous_cert_id_mismatch_ec_should_be_a_certificate_conflict() -> None:
    sdk = service_error(400, "InvalidArgument", ec="0018-00000209")
    mapped = map_oss_error(sdk, "PutCname")
    assert type(mapped) is OssCertificateConflict
    assert isinstance(mapped, CertificateConflict) and isinstance(mapped, OssError)
    assert (mapped.code, mapped.ec, mapped.retryable) == ("InvalidArgument", "0018-00000209", False)
    assert mapped.request_id == "5C3D8D2A0ACA54D87B43ABCD"


@pytest.mark.parametrize("status", [500, 503])
def test_oss_specific_class_should_keep_its_own_retryability_whatever_the_status(
    status: int,
) -> None:
    assert map_oss_error(service_error(status, "CnameAlreadyExists"), "PutCname").retryable is False
    pending = map_oss_error(service_error(status, "NeedVerifyDomainOwnership"), "PutCname")
    assert pending.retryable is True


@pytest.mark.parametrize("code", sorted(oss_errors.THROTTLE_CODES))
def test_every_oss_throttle_code_should_map_to_a_retryable_throttled(code: str) -> None:
    mapped = map_oss_error(service_error(503, code), "PutCname")
    assert isinstance(mapped, OssThrottled) and isinstance(mapped, Throttled)
    assert mapped.retryable is True
