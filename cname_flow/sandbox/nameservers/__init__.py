"""The sandbox's authoritative nameservers and resolver, over UDP and TCP."""
