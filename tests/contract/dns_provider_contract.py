"""The one contract every DNS provider passes, fake and real alike (lexicon IntegrationTestsV2).

A test class mixes :class:`DnsProviderContract` in and defines a ``provider`` fixture returning a
:class:`~cname_flow.dns.base.DnsProvider` whose account hosts the zones ``example.com`` and
``example.com.cn`` (the sandbox default world), nothing else whose name ends in them, and a
TTL floor of 600 s. Tests use fresh random labels, so one account can serve the whole suite.
"""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest

from cname_flow.dns.base import OWNER_REMARK, DnsProvider
from cname_flow.errors import ZoneNotFound


def fresh() -> str:
    """A label no other test uses."""
    return f"t{uuid.uuid4().hex[:10]}"


class DnsProviderContract:
    """Behaviour the flow relies on; subclasses provide the ``provider`` fixture."""

    # ----------------------------------------------------------------- zones
    def test_find_zone_when_name_is_the_apex_should_return_that_zone(
        self, provider: DnsProvider
    ) -> None:
        zone = provider.find_zone("example.com")
        assert zone.name == "example.com"
        assert zone.nameservers
        assert zone.min_ttl == 600

    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("_dnsauth.img.example.com", "example.com"),
            ("a.b.c.example.com", "example.com"),
            ("img.example.com.cn", "example.com.cn"),
            ("IMG.Example.COM.", "example.com"),
        ],
    )
    def test_find_zone_when_name_is_below_zones_should_pick_longest_owned_suffix(
        self, provider: DnsProvider, name: str, expected: str
    ) -> None:
        assert provider.find_zone(name).name == expected

    @pytest.mark.parametrize("name", ["notexample.com", "example.org", "com.cn", "cn"])
    def test_find_zone_when_no_zone_contains_name_should_raise_zone_not_found(
        self, provider: DnsProvider, name: str
    ) -> None:
        with pytest.raises(ZoneNotFound) as info:
            provider.find_zone(name)
        assert info.value.retryable is False
        assert name.rstrip(".").lower() in str(info.value)

    def test_rr_for_should_give_at_for_apex_and_relative_name_below(
        self, provider: DnsProvider
    ) -> None:
        zone = provider.find_zone("example.com.cn")
        assert provider.rr_for(zone, "example.com.cn") == "@"
        assert provider.rr_for(zone, "_dnsauth.img.example.com.cn") == "_dnsauth.img"

    # ----------------------------------------------------------------- upsert
    def test_upsert_when_absent_should_add_an_owned_record(self, provider: DnsProvider) -> None:
        zone = provider.find_zone("example.com")
        name = f"_dnsauth.{fresh()}.example.com"
        ref, changed = provider.upsert(zone, name, "TXT", "token-1", 600)
        assert changed is True
        assert (ref.fqdn, ref.type, ref.value, ref.remark) == (name, "TXT", "token-1", OWNER_REMARK)
        listed = provider.list_records(zone, name, "TXT")
        assert [(r.record_id, r.value, r.ttl, r.remark) for r in listed] == [
            (ref.record_id, "token-1", 600, OWNER_REMARK)
        ]

    def test_upsert_when_value_present_should_change_nothing(self, provider: DnsProvider) -> None:
        zone = provider.find_zone("example.com")
        name = f"_dnsauth.{fresh()}.example.com"
        first, _ = provider.upsert(zone, name, "TXT", "token-1", 600)
        again, changed = provider.upsert(zone, name, "TXT", "token-1", 600)
        assert changed is False
        assert again.record_id == first.record_id
        assert len(provider.list_records(zone, name, "TXT")) == 1

    def test_upsert_when_value_quoted_should_match_the_unquoted_record(
        self, provider: DnsProvider
    ) -> None:
        zone = provider.find_zone("example.com")
        name = f"_dnsauth.{fresh()}.example.com"
        ref, _ = provider.upsert(zone, name, "TXT", '"token-q"', 600)
        assert ref.value == "token-q"
        again, changed = provider.upsert(zone, name, "TXT", "token-q", 600)
        assert (again.record_id, changed) == (ref.record_id, False)

    def test_claim_should_mark_the_record_and_keep_it_as_it_is(
        self, provider: DnsProvider
    ) -> None:
        zone = provider.find_zone("example.com")
        name = f"_dnsauth.{fresh()}.example.com"
        ref, _ = provider.upsert(zone, name, "TXT", "token-claim", 600)
        seen_unmarked = replace(ref, remark="")  # as a run that lost the add's answer sees it
        claimed = provider.claim(seen_unmarked)
        assert claimed == replace(seen_unmarked, remark=OWNER_REMARK)
        assert provider.claim(claimed) == claimed
        [listed] = provider.list_records(zone, name, "TXT")
        assert (listed.record_id, listed.value, listed.remark) == (
            ref.record_id, "token-claim", OWNER_REMARK)

    def test_upsert_when_ttl_below_floor_should_raise_it_to_min_ttl(
        self, provider: DnsProvider
    ) -> None:
        zone = provider.find_zone("example.com")
        name = f"_dnsauth.{fresh()}.example.com"
        ref, _ = provider.upsert(zone, name, "TXT", "token-ttl", 1)
        assert ref.ttl == zone.min_ttl
        assert provider.list_records(zone, name, "TXT")[0].ttl == zone.min_ttl

    def test_upsert_with_replace_should_update_in_place(self, provider: DnsProvider) -> None:
        zone = provider.find_zone("example.com")
        name = f"_dnsauth.{fresh()}.example.com"
        old, _ = provider.upsert(zone, name, "TXT", "token-old", 600)
        new, changed = provider.upsert(zone, name, "TXT", "token-new", 600, replace=old)
        assert changed is True
        assert (new.record_id, new.value) == (old.record_id, "token-new")
        listed = provider.list_records(zone, name, "TXT")
        assert [(r.record_id, r.value) for r in listed] == [(old.record_id, "token-new")]

    def test_upsert_with_replace_of_a_deleted_record_should_add(
        self, provider: DnsProvider
    ) -> None:
        zone = provider.find_zone("example.com")
        name = f"_dnsauth.{fresh()}.example.com"
        old, _ = provider.upsert(zone, name, "TXT", "token-old", 600)
        provider.delete_record(old)
        new, changed = provider.upsert(zone, name, "TXT", "token-new", 600, replace=old)
        assert changed is True
        assert new.record_id != old.record_id
        assert [r.value for r in provider.list_records(zone, name, "TXT")] == ["token-new"]

    def test_upsert_without_replace_should_keep_other_values(self, provider: DnsProvider) -> None:
        zone = provider.find_zone("example.com")
        name = f"_dnsauth.{fresh()}.example.com"
        provider.upsert(zone, name, "TXT", "foreign-value", 600)
        provider.upsert(zone, name, "TXT", "token-2", 600)
        values = sorted(r.value for r in provider.list_records(zone, name, "TXT"))
        assert values == ["foreign-value", "token-2"]

    def test_upsert_when_name_has_mixed_case_should_store_lowercase_rr(
        self, provider: DnsProvider
    ) -> None:
        zone = provider.find_zone("example.com")
        label = fresh()
        ref, _ = provider.upsert(zone, f"_DNSAuth.{label.upper()}.Example.COM", "TXT", "v", 600)
        assert ref.rr == f"_dnsauth.{label}"
        assert len(provider.list_records(zone, f"_dnsauth.{label}.example.com", "TXT")) == 1

    def test_upsert_at_apex_should_use_at_rr(self, provider: DnsProvider) -> None:
        zone = provider.find_zone("example.com.cn")
        value = f"apex-{fresh()}"
        ref, changed = provider.upsert(zone, "example.com.cn", "TXT", value, 600)
        try:
            assert (ref.rr, ref.fqdn, changed) == ("@", "example.com.cn", True)
            apex = provider.list_records(zone, "example.com.cn", "TXT")
            assert value in [r.value for r in apex]
        finally:
            provider.delete_record(ref)

    # ----------------------------------------------------------------- listing
    def test_list_records_should_match_exact_name_and_type_only(
        self, provider: DnsProvider
    ) -> None:
        zone = provider.find_zone("example.com")
        label = fresh()
        provider.upsert(zone, f"_dnsauth.{label}.example.com", "TXT", "mine", 600)
        provider.upsert(zone, f"_dnsauth.{label}2.example.com", "TXT", "neighbour", 600)
        target = "b.oss-cn-hangzhou.aliyuncs.com"
        provider.upsert(zone, f"{label}.example.com", "CNAME", target, 600)
        mine = provider.list_records(zone, f"_dnsauth.{label}.example.com", "TXT")
        assert [r.value for r in mine] == ["mine"]
        assert provider.list_records(zone, f"{label}.example.com", "TXT") == []
        cname = provider.list_records(zone, f"{label}.example.com", "cname")
        assert [(r.type, r.value) for r in cname] == [("CNAME", target)]

    def test_list_records_when_nothing_there_should_return_empty(
        self, provider: DnsProvider
    ) -> None:
        zone = provider.find_zone("example.com")
        assert provider.list_records(zone, f"_dnsauth.{fresh()}.example.com", "TXT") == []

    # ----------------------------------------------------------------- delete
    def test_delete_record_should_remove_it_and_be_idempotent(self, provider: DnsProvider) -> None:
        zone = provider.find_zone("example.com")
        name = f"_dnsauth.{fresh()}.example.com"
        ref, _ = provider.upsert(zone, name, "TXT", "gone-soon", 600)
        provider.delete_record(ref)
        assert provider.list_records(zone, name, "TXT") == []
        provider.delete_record(ref)  # second delete: already gone, no error
        assert provider.list_records(zone, name, "TXT") == []
