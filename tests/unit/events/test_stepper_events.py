"""The DBOS stepper announces a binding's end as the engine does (sandbox, real SDK clients,
the JSON store; no DBOS needed to call the stepper)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from cname_flow import service
from cname_flow.config import load_settings
from cname_flow.events import Event
from cname_flow.sandbox.app import Sandbox
from cname_flow.scaleout import spec as specs
from cname_flow.scaleout.stepper import Stepper
from cname_flow.store import JsonStore
from tests.e2e.bindkit import write_config


class Keep:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def publish(self, event: Event) -> None:
        self.events.append(event)


def test_the_stepper_publishes_verified_once_when_the_binding_is_bound(
    tmp_path: Path, sandbox: Sandbox,
) -> None:
    cfg = tmp_path / "cname-flow.yaml"
    write_config(cfg, sandbox)
    env = {"OSS_ACCESS_KEY_ID": sandbox.info.access_key_id,
           "OSS_ACCESS_KEY_SECRET": sandbox.info.access_key_secret}
    settings = load_settings(cfg, env=env)
    sink = Keep()
    clients = replace(service.Clients.from_settings(settings, env), events=sink)
    spec = specs.encode(service.make_binding(settings, "stepped.example.com"), "job-1")
    with JsonStore(tmp_path / "journal", fsync=False) as store:
        stepper = Stepper(clients, store)
        phases: list[str] = []
        while not phases or phases[-1] != "BOUND":
            phases.append(stepper.advance(spec)["phase"])
            assert sink.events == [] or phases[-1] == "BOUND"
            assert len(phases) < 10
        assert stepper.advance(spec)["status"] == "ended"
    [event] = sink.events
    assert (event.type, event.subject) == ("binding.verified",
                                           "examplebucket/stepped.example.com")
    assert event.data["status"] == "Enabled"
