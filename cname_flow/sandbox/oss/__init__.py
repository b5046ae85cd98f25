"""The sandbox's OSS CNAME API: routes, signatures (V1, V4), XML, operations, certificates."""
