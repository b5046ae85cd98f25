"""The OSS CNAME API: the port, the alibabacloud-oss-v2 adapter, its errors and transport."""
