"""Certificates: PEM parsing and checks, certificate names (RFC 6125), rotation plans."""
