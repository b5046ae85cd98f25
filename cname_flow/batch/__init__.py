"""Resumable batch jobs: many bindings driven at once, close to the APIs' rate limits."""
