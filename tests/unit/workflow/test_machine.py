"""The transition table: total over non-terminal phases, shortcuts only where allowed."""

from __future__ import annotations

import pytest

from cname_flow.errors import TransitionNotAllowed
from cname_flow.model import Phase, Step
from cname_flow.workflow import machine


def test_table_when_walked_from_pending_should_reach_bound_through_every_step() -> None:
    phase, seen = Phase.PENDING, []
    while phase not in machine.TERMINAL:
        t = machine.transition(phase)
        seen.append(t.step)
        phase = t.target
    assert phase is Phase.BOUND
    assert seen == list(Step) == machine.step_order()


@pytest.mark.parametrize("phase", sorted(machine.TERMINAL))
def test_transition_when_phase_is_terminal_should_raise(phase: Phase) -> None:
    with pytest.raises(TransitionNotAllowed) as err:
        machine.transition(phase)
    assert err.value.phase == phase


def test_table_should_cover_every_non_terminal_phase() -> None:
    assert set(machine.TABLE) | machine.TERMINAL == set(Phase)


@pytest.mark.parametrize(("phase", "target"), [
    (Phase.PENDING, Phase.VERIFIED),       # already bound: fast path
    (Phase.PENDING, Phase.TXT_VISIBLE),    # bound, certificate must change
    (Phase.PENDING, Phase.CNAME_PUT),      # bound meanwhile (NoNeedCreateCnameToken)
    (Phase.TXT_WRITTEN, Phase.TXT_VISIBLE),
])
def test_check_target_when_allowed_should_return_it(phase: Phase, target: Phase) -> None:
    assert machine.check_target(phase, target) is target


@pytest.mark.parametrize(("phase", "target"), [
    (Phase.TOKEN_READY, Phase.CNAME_PUT),  # skipping propagation is never allowed
    (Phase.TXT_WRITTEN, Phase.BOUND),
    (Phase.VERIFIED, Phase.PENDING),
])
def test_check_target_when_not_in_table_should_raise(phase: Phase, target: Phase) -> None:
    with pytest.raises(TransitionNotAllowed):
        machine.check_target(phase, target)


@pytest.mark.parametrize(("recorded", "start"), [
    (None, Phase.PENDING), (Phase.BOUND, Phase.PENDING), (Phase.FAILED, Phase.PENDING),
    (Phase.TXT_WRITTEN, Phase.TXT_WRITTEN), (Phase.CNAME_PUT, Phase.CNAME_PUT),
])
def test_resume_phase(recorded: Phase | None, start: Phase) -> None:
    assert machine.resume_phase(recorded) is start
