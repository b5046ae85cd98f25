"""``cname-flow doctor``: is this machine, account and zone ready to bind? (docs/doctor.md)

:func:`run_doctor` runs the checks and returns a :class:`DoctorReport`; nothing is written at
OSS or in DNS. :func:`minimal_policy` is the RAM policy printed with it.
"""

from cname_flow.doctor.checks import SCHEMA, Check, DoctorReport, run_doctor
from cname_flow.doctor.policy import minimal_policy

__all__ = ["SCHEMA", "Check", "DoctorReport", "minimal_policy", "run_doctor"]
