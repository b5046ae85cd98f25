"""Propagation: the TXT record asked of every authoritative nameserver address."""
