"""cname-flow: bind custom domains to Alibaba Cloud OSS buckets as a resumable state machine.

CNAME token (CreateCnameToken) → ``_dnsauth`` TXT record through a DNS provider → propagation
checked at every authoritative nameserver → PutCname → verification through ListCname.

The library (README, "Use it as a library"; documented in :mod:`cname_flow.api`)::

    import cname_flow

    record = cname_flow.bind("static.example.com", bucket="examplebucket", config="cname-flow.yaml")
    record = await cname_flow.bind_async(...)          # inside a running event loop

``bind``, ``unbind``, ``plan``, ``status`` and ``run_batch`` return :class:`BindingRecord`, a
list of action sentences, :class:`Plan`, a list of :class:`BindingRecord` and :class:`JobResult`;
each has an ``*_async`` twin. Errors are :class:`CnameFlowError` subclasses
(:mod:`cname_flow.errors`). Importing this package loads no vendor SDK and no dnspython: the API
names load :mod:`cname_flow.api` on first use. The library writes nothing to stdout and configures
no logging (:mod:`cname_flow.logs`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from cname_flow.errors import CnameFlowError
from cname_flow.model import Binding, CnameEntry, CnameToken, Phase, Step, normalize_domain

if TYPE_CHECKING:
    from cname_flow.api import (
        bind,
        bind_async,
        plan,
        plan_async,
        run_batch,
        run_batch_async,
        status,
        status_async,
        unbind,
        unbind_async,
    )
    from cname_flow.batch.jobs import JobResult
    from cname_flow.journal import BindingRecord
    from cname_flow.workflow.plan import Plan

__version__ = "0.1.0"

#: Public names loaded on first use (module ``__getattr__``, PEP 562), each from its module.
_LAZY = {
    **dict.fromkeys(("bind", "bind_async", "plan", "plan_async", "run_batch", "run_batch_async",
                     "status", "status_async", "unbind", "unbind_async"), "cname_flow.api"),
    "BindingRecord": "cname_flow.journal",
    "JobResult": "cname_flow.batch.jobs",
    "Plan": "cname_flow.workflow.plan",
}

__all__ = [
    "Binding",
    "BindingRecord",
    "CnameEntry",
    "CnameFlowError",
    "CnameToken",
    "JobResult",
    "Phase",
    "Plan",
    "Step",
    "__version__",
    "bind",
    "bind_async",
    "normalize_domain",
    "plan",
    "plan_async",
    "run_batch",
    "run_batch_async",
    "status",
    "status_async",
    "unbind",
    "unbind_async",
]


def __getattr__(name: str) -> object:
    """The lazily loaded public names (:data:`_LAZY`).

    Raises:
        AttributeError: ``name`` is not a public name of the package.
    """
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
