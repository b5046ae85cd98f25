"""DNS provider adapters behind the :class:`cname_flow.dns.base.DnsProvider` port."""
