"""What a binding workflow is given: the binding as JSON-safe values, and its workflow id.

DBOS persists a workflow's inputs in its system database (so that a recovering worker can run
it again), so a spec carries the binding's desired state and *where* a certificate is (file
paths, which every worker must be able to read, or a CAS certificate id), never a private key
or a credential.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict

from cname_flow.model import Binding, BindingOptions, CertificateSpec

#: The DBOS queue every binding workflow is enqueued on.
BIND_QUEUE = "cname-flow-bindings"

#: The registered name of the binding workflow (``@DBOS.workflow(name=...)``).
BIND_WORKFLOW = "cname_flow.bind"


class BindingSpec(TypedDict):
    """A binding workflow's input (JSON-safe).

    Keys: ``job_id`` (the job the binding belongs to), ``domain``, ``bucket``, ``region``
    (``""``: learn it), ``cert_file`` / ``key_file`` (paths, or None), ``cert_id`` (CAS id, or
    None), ``route``, ``route_target``, ``remove_txt``, ``force_cert``.
    """

    job_id: str
    domain: str
    bucket: str
    region: str
    cert_file: str | None
    key_file: str | None
    cert_id: str | None
    route: bool
    route_target: str | None
    remove_txt: bool
    force_cert: bool


def encode(binding: Binding, job_id: str) -> BindingSpec:
    """``binding`` of job ``job_id`` as a workflow input (paths made absolute)."""
    cert = binding.certificate
    return BindingSpec(
        job_id=job_id, domain=binding.domain, bucket=binding.bucket, region=binding.region,
        cert_file=None if cert is None or cert.cert_file is None
        else str(Path(cert.cert_file).absolute()),
        key_file=None if cert is None or cert.key_file is None
        else str(Path(cert.key_file).absolute()),
        cert_id=None if cert is None else cert.cert_id,
        route=binding.options.route, route_target=binding.options.route_target,
        remove_txt=binding.options.remove_txt, force_cert=binding.options.force_cert,
    )


def decode(spec: BindingSpec) -> Binding:
    """The :class:`~cname_flow.model.Binding` of a workflow input (inverse of :func:`encode`).

    Raises:
        KeyError: a key of :class:`BindingSpec` is missing.
    """
    cert = None
    if spec["cert_file"] or spec["key_file"] or spec["cert_id"]:
        cert = CertificateSpec(
            cert_file=Path(spec["cert_file"]) if spec["cert_file"] else None,
            key_file=Path(spec["key_file"]) if spec["key_file"] else None,
            cert_id=spec["cert_id"])
    return Binding(domain=spec["domain"], bucket=spec["bucket"], region=spec["region"],
                   certificate=cert,
                   options=BindingOptions(route=spec["route"], route_target=spec["route_target"],
                                          remove_txt=spec["remove_txt"],
                                          force_cert=spec["force_cert"]))


def workflow_id(job_id: str, key: str) -> str:
    """The DBOS workflow id of binding ``key`` in job ``job_id``: ``"<job_id>:<key>"``.

    Deterministic, so enqueueing a job twice (a re-run, a retried ``batch run``) starts each
    binding's workflow once: DBOS treats a second enqueue of an existing id as the same
    workflow.
    """
    return f"{job_id}:{key}"
