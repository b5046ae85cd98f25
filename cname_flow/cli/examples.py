"""One or more examples per command, shown at the end of its ``--help``.

Keyed by the command's path under ``cname-flow`` (``"batch run"``). Kept apart from the command
code so a command's options and its examples can be read (and tested) side by side:
``tests/unit/cli/test_low_defects.py`` checks that every command has at least one.
"""

from __future__ import annotations

EXAMPLES: dict[str, tuple[str, ...]] = {
    "bind": (
        "cname-flow bind static.example.com --bucket examplebucket",
        "cname-flow bind static.example.com --cert-file chain.pem --key-file key.pem",
    ),
    "plan": (
        "cname-flow plan www.example.com img.example.com --bucket examplebucket",
        "cname-flow plan www.example.com --detailed-exitcode   # 0 nothing to do, 2 changes",
    ),
    "unbind": ("cname-flow unbind static.example.com --bucket examplebucket",),
    "check": ("cname-flow check shop.customer.example --json",),
    "events": ("cname-flow events --follow --type binding.bound", "cname-flow events --resend"),
    "status": ("cname-flow status", "cname-flow status static.example.com --json"),
    "forget": ("cname-flow forget static.example.com", "cname-flow forget --unbound"),
    "doctor": ("cname-flow doctor", "cname-flow doctor --json"),
    "demo": ("cname-flow demo", "cname-flow demo --lag 5"),
    "sandbox": ("cname-flow sandbox serve --write-config sandbox.yaml",),
    "sandbox serve": (
        "cname-flow sandbox serve --write-config sandbox.yaml --state sandbox-state.json",
    ),
    "cert": ("cname-flow cert status",),
    "cert remove": ("cname-flow cert remove static.example.com --bucket examplebucket",),
    "cert status": ("cname-flow cert status --bucket examplebucket --json",),
    "batch": ("cname-flow batch run -f workflows/domains.yaml",),
    "batch run": ("cname-flow batch run -f workflows/domains.yaml --concurrency 8",),
    "batch resume": ("cname-flow batch resume 20260101-abcdef --retry-failed",),
    "batch status": ("cname-flow batch status 20260101-abcdef --follow",),
    "batch list": ("cname-flow batch list --json",),
    "reconcile": (
        "cname-flow reconcile -f workflows/domains.yaml",
        "cname-flow reconcile -f workflows/domains.yaml --apply --policy upsert-only",
    ),
    "store": ("cname-flow store info",),
    "store migrate": ("cname-flow --config prod.yaml store migrate",),
    "store info": ("cname-flow store info --json",),
    "worker": ("CNAME_FLOW_STORE_URL=postgresql://cf@db/cf cname-flow worker --concurrency 32",),
}
