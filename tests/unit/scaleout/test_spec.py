"""A binding survives the trip through a workflow input, and the input holds no key material."""

from __future__ import annotations

import json
from pathlib import Path

from cname_flow.model import Binding, BindingOptions, CertificateSpec
from cname_flow.scaleout.spec import decode, encode, workflow_id


def test_a_binding_round_trips_through_json() -> None:
    binding = Binding("www.example.com", "examplebucket", "cn-hangzhou",
                      CertificateSpec(cert_file=Path("/etc/c.pem"), key_file=Path("/etc/k.pem")),
                      BindingOptions(route=True, remove_txt=True))
    spec = json.loads(json.dumps(encode(binding, "job-1")))
    assert decode(spec) == binding
    assert spec["job_id"] == "job-1"


def test_a_binding_without_certificate_round_trips() -> None:
    binding = Binding("a.example.com", "b", "")
    assert decode(encode(binding, "j")) == binding


def test_relative_certificate_paths_become_absolute() -> None:
    binding = Binding("a.example.com", "b", "cn-hangzhou",
                      CertificateSpec(cert_file=Path("c.pem"), key_file=Path("k.pem")))
    spec = encode(binding, "j")
    assert spec["cert_file"] is not None and Path(spec["cert_file"]).is_absolute()


def test_workflow_ids_are_deterministic_per_job_and_binding() -> None:
    assert workflow_id("j1", "b/a.example.com") == workflow_id("j1", "b/a.example.com")
    assert workflow_id("j1", "b/a.example.com") != workflow_id("j2", "b/a.example.com")
