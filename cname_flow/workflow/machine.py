"""The binding state machine as one explicit transition table. Pure: no I/O.

The flow is drawn in the README ("How a binding flows"); the rules in docs/design.md.

::

    PENDING ─create_token─▶ TOKEN_READY ─write_txt─▶ TXT_WRITTEN ─wait_propagation─▶ TXT_VISIBLE
    TXT_VISIBLE ─put_cname─▶ CNAME_PUT ─verify─▶ VERIFIED ─finish─▶ BOUND

Steps may also take the documented shortcuts (a domain already bound skips ahead) and the one
back-edge: an expired CNAME token sends the binding back to PENDING.
"""

from __future__ import annotations

from dataclasses import dataclass

from cname_flow.errors import TransitionNotAllowed
from cname_flow.model import Phase, Step


@dataclass(frozen=True, slots=True)
class Transition:
    """The step that leaves a phase, where it normally leads, and the shortcuts it may take."""

    step: Step
    target: Phase
    shortcuts: frozenset[Phase] = frozenset()


TABLE: dict[Phase, Transition] = {
    Phase.PENDING: Transition(
        Step.CREATE_TOKEN, Phase.TOKEN_READY,
        # already bound (fast path), or bound but the certificate must change
        frozenset({Phase.VERIFIED, Phase.TXT_VISIBLE, Phase.CNAME_PUT}),
    ),
    Phase.TOKEN_READY: Transition(Step.WRITE_TXT, Phase.TXT_WRITTEN),
    Phase.TXT_WRITTEN: Transition(Step.WAIT_PROPAGATION, Phase.TXT_VISIBLE),
    Phase.TXT_VISIBLE: Transition(Step.PUT_CNAME, Phase.CNAME_PUT),
    Phase.CNAME_PUT: Transition(Step.VERIFY, Phase.VERIFIED),
    Phase.VERIFIED: Transition(Step.FINISH, Phase.BOUND),
}

#: Phases with no step: the run is over (UNBOUND: ``unbind`` undid it; a new run starts over).
TERMINAL: frozenset[Phase] = frozenset({Phase.BOUND, Phase.FAILED, Phase.UNBOUND})

#: Where an expired token sends a binding.
ON_TOKEN_EXPIRED = Phase.PENDING


def transition(phase: Phase) -> Transition:
    """The transition leaving ``phase``.

    Raises:
        TransitionNotAllowed: ``phase`` is terminal or unknown.
    """
    try:
        return TABLE[phase]
    except KeyError:
        raise TransitionNotAllowed(f"no step leaves phase {phase}", phase=str(phase)) from None


def check_target(phase: Phase, target: Phase) -> Phase:
    """Return ``target`` if the step leaving ``phase`` may lead there.

    Raises:
        TransitionNotAllowed: the step produced a phase the table does not allow.
    """
    t = transition(phase)
    if target == t.target or target in t.shortcuts:
        return target
    raise TransitionNotAllowed(f"{t.step} may not lead from {phase} to {target}", phase=str(phase))


def resume_phase(recorded: Phase | None) -> Phase:
    """The phase a run starts from given the journal's last phase.

    A binding never seen, or one that ended (BOUND, FAILED or UNBOUND), starts a fresh pass at
    PENDING: every step observes before it acts, so a pass over a bound domain only reads. Any other
    phase is resumed where it stopped; its ``running`` step is re-run.
    """
    if recorded is None or recorded in TERMINAL:
        return Phase.PENDING
    return recorded


def step_order() -> list[Step]:
    """The steps of the happy path, in order."""
    return [t.step for t in TABLE.values()]
