"""Fuzzing the input boundaries (issue 13): no input may raise but the project's own errors.

Every module here drives one boundary (manifests, config, domain names, certificates, the
journal, the command line) with hypothesis-generated input under :data:`FUZZ`, a bounded
budget, and asserts that each input either passes or is refused with a
:class:`~cname_flow.errors.CnameFlowError` (exit 2 for input errors at the CLI). Run them alone
with ``pytest tests/fuzz --hypothesis-show-statistics`` to see inputs tried and time per boundary.
"""
