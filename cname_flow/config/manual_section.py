"""The ``manual`` settings section: how a binding whose TXT record a person adds is waited for.

A zone is manual when ``dns.zones`` maps it to ``manual`` (or ``bind --dns manual`` is given);
cname-flow then writes no record there: it says which record to add and checks, at every
authoritative nameserver only, until the record is seen (docs/manual-mode.md). Example::

    dns:
      zones: {customer.example: manual}
    manual:
      first_check_s: 60         # the first check, after the instructions
      fast_period_s: 60         # then about every minute ...
      fast_for_s: 1200          # ... for 20 minutes,
      factor: 1.15              # then each gap 15 % longer ...
      check_cap_s: 1800         # ... up to 30 minutes
      give_up_after_s: 604800   # FAILED after 7 days without the record
      renew_before_s: 43200     # re-mint the CNAME token when less than 12 h remain
      check_now_interval_s: 30  # `cname-flow check` at most once per 30 s per domain
      bind_wait_s: 900          # how long a one-shot `bind` waits before exiting 75

The cadence follows Cloudflare's custom-hostname re-check schedule tuned for a 72 h token
(../shared reference: next-wave.md §1.4; Cloudflare, "Custom hostname validation",
https://developers.cloudflare.com/cloudflare-for-platforms/cloudflare-for-saas/domain-support/hostname-validation/).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from cname_flow.config.sections import SettingsModel

_Seconds = Annotated[float, Field(gt=0, le=30 * 86400)]


class ManualSettings(SettingsModel):
    """The ``manual`` section (all durations in seconds).

    Attributes:
        first_check_s: from the instructions to the first check.
        fast_period_s: gap between checks during the fast window.
        fast_for_s: length of the fast window, from the instructions.
        factor: growth of each gap after the fast window (≥ 1).
        check_cap_s: the longest gap between two checks.
        give_up_after_s: from the instructions to giving up (the binding goes FAILED).
        renew_before_s: re-mint the CNAME token (CreateCnameToken) when less than this remains
            of its 72 h validity.
        check_now_interval_s: least time between two ``cname-flow check`` runs of one domain.
        bind_wait_s: how long a one-shot ``bind`` keeps checking before it exits 75, leaving
            the binding in the store for ``reconcile`` or ``cname-flow check``.
    """

    first_check_s: _Seconds = 60.0
    fast_period_s: _Seconds = 60.0
    fast_for_s: Annotated[float, Field(ge=0, le=30 * 86400)] = 1200.0
    factor: Annotated[float, Field(ge=1.0, le=10.0)] = 1.15
    check_cap_s: _Seconds = 1800.0
    give_up_after_s: _Seconds = 7 * 86400.0
    renew_before_s: Annotated[float, Field(ge=0, le=72 * 3600)] = 12 * 3600.0
    check_now_interval_s: Annotated[float, Field(ge=0, le=86400)] = 30.0
    bind_wait_s: Annotated[float, Field(ge=0, le=86400)] = 900.0

    @model_validator(mode="after")
    def _cap(self) -> ManualSettings:
        if self.check_cap_s < self.fast_period_s:
            raise ValueError("manual.check_cap_s must be at least manual.fast_period_s")
        return self
