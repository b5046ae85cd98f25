"""Reconciliation: desired bindings against actual, drift, plans and metrics."""
