"""Manual mode: bindings whose ``_dnsauth`` TXT record a person adds (a customer's DNS).

cname-flow writes nothing in a manual zone. It records and publishes the exact record to add
(:mod:`~cname_flow.manual.instructions`), then checks every authoritative nameserver of the zone
(never a recursive resolver) on a durable schedule (:mod:`~cname_flow.manual.cadence`), names the
usual mistakes (:mod:`~cname_flow.manual.detect`), re-mints the CNAME token before its 72 h
expiry, and lets the binding go on to PutCname once the record is served everywhere
(:mod:`~cname_flow.manual.wait`). User guide: docs/manual-mode.md.

Importing this package loads nothing else of cname-flow.
"""
