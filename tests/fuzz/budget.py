"""The fuzzing suite's budget: examples per boundary, no per-example deadline (shared CI hosts).

``CNAME_FLOW_FUZZ_EXAMPLES`` raises or lowers the examples per test (default 300), e.g. for a
long local run; the seed is derandomised so a failure found in CI is found again locally.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

#: Examples per fuzz test.
EXAMPLES = int(os.environ.get("CNAME_FLOW_FUZZ_EXAMPLES", "300"))

#: The settings every fuzz test runs under.
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
