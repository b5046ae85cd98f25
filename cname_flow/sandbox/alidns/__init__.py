"""The sandbox's Alidns API: the RPC endpoint, its signature check, operations, rules."""
