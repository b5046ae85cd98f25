"""The sandbox: a local Alibaba Cloud for OSS custom domains (OSS CNAME API, Alidns API, DNS).

The real SDK clients talk to it unmodified over HTTP; DNS answers come over real UDP/TCP sockets.
"""
