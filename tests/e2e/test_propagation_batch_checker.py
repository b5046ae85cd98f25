"""The batch checker's pre-state on the job's event loop, against the sandbox over real sockets.

Worker threads call :meth:`CachingChecker.pre_state`; with a loop attached it runs there through
the shared UDP transport, and falls back to the shared pool when there is no usable loop (none
attached, the caller is the loop's thread, the loop stopped, closed or stalled, or the checker
was closed), always with the same answer and the same errors.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Coroutine, Iterator, MutableMapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
import uvloop
from structlog.testing import capture_logs

from cname_flow.batch import checker as batch_checker
from cname_flow.batch.checker import CachingChecker, pre_state_bound_s
from cname_flow.errors import StepError
from cname_flow.propagation.checker import NameserverAddress, PreState, PropagationChecker
from cname_flow.propagation.model import PropagationPolicy
from cname_flow.sandbox.app import Sandbox
from cname_flow.sandbox.config import RecordConfig, ZoneConfig
from tests.e2e.bindkit import world

pytestmark = pytest.mark.e2e

ZONE = "example.com"
ABSENT = "_dnsauth.absent.example.com"
PRESENT = "_dnsauth.old.example.com"
LOOP_THREAD = "job-loop"
OFF_LOOP = "propagation.pre_state_off_loop"
_T = TypeVar("_T")


@dataclass
class Lab:
    policy: PropagationPolicy
    targets: list[NameserverAddress]
    silent: NameserverAddress  # a UDP port that never answers


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    zone = ZoneConfig(name=ZONE, records=[
        RecordConfig(rr="_dnsauth.old", type="TXT", value="old-token")])
    with Sandbox(world(zones=[zone])) as sandbox, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        policy = PropagationPolicy(query_timeout_s=0.5, tcp_timeout_s=0.5,
                                   nameserver_addresses=sandbox.info.nameservers)
        targets = PropagationChecker(policy).targets(
            ZONE, list(sandbox.state.zones[ZONE].nameservers))
        yield Lab(policy, targets,
                  NameserverAddress("ns3.silent.test", "127.0.0.1", silent.getsockname()[1]))


class SpyChecker(CachingChecker):
    """Records the thread of every pre-state that ran on a loop."""

    def __init__(self, base: PropagationChecker) -> None:
        super().__init__(base, threads=4)
        self.on_loop: list[str] = []
        self.finished = 0

    async def pre_state_async(self, name: str,
                              targets: Sequence[NameserverAddress]) -> PreState:
        self.on_loop.append(threading.current_thread().name)
        try:
            return await super().pre_state_async(name, targets)
        finally:
            self.finished += 1


@pytest.fixture
def checker(lab: Lab) -> Iterator[SpyChecker]:
    spy = SpyChecker(PropagationChecker(lab.policy))
    yield spy
    spy.close()


class LoopThread:
    """A uvloop event loop running forever in its own thread, like the job's."""

    def __init__(self) -> None:
        self.loop = uvloop.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=LOOP_THREAD)
        self.thread.start()

    def call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=30)

    def close(self) -> None:
        self.stop()
        if not self.loop.is_closed():
            self.loop.close()


@pytest.fixture
def job_loop() -> Iterator[LoopThread]:
    running = LoopThread()
    yield running
    running.close()


async def attach(checker: CachingChecker) -> None:
    checker.attach_loop()


def expected(lab: Lab, name: str, targets: Sequence[NameserverAddress] | None = None) -> PreState:
    return PropagationChecker(lab.policy).pre_state(name, targets or lab.targets)


def off_loop_reasons(logs: Sequence[MutableMapping[str, Any]]) -> list[str]:
    return [entry["reason"] for entry in logs if entry["event"] == OFF_LOOP]


@pytest.mark.parametrize("name", [ABSENT, PRESENT])
def test_pre_state_from_a_worker_should_run_on_the_attached_loop(
    lab: Lab, checker: SpyChecker, job_loop: LoopThread, name: str
) -> None:
    job_loop.call(attach(checker))
    with ThreadPoolExecutor(2, thread_name_prefix="worker") as workers:
        pres = list(workers.map(lambda _: checker.pre_state(name, lab.targets), range(4)))
    assert pres == [expected(lab, name)] * 4
    assert checker.on_loop == [LOOP_THREAD] * 4
    job_loop.call(checker.aclose())


def test_pre_state_without_a_loop_should_ask_on_the_pool(lab: Lab, checker: SpyChecker) -> None:
    assert checker.pre_state(PRESENT, lab.targets) == expected(lab, PRESENT)
    assert checker.on_loop == []


def test_first_asynchronous_call_should_teach_the_checker_its_loop(
    lab: Lab, checker: SpyChecker, job_loop: LoopThread
) -> None:
    job_loop.call(checker.observe_async(PRESENT, "old-token", lab.targets))  # a poll
    assert checker.pre_state(ABSENT, lab.targets) == expected(lab, ABSENT)
    assert checker.on_loop == [LOOP_THREAD]
    job_loop.call(checker.aclose())


def test_pre_state_on_the_loops_own_thread_should_ask_on_the_pool_without_waiting(
    lab: Lab, checker: SpyChecker, job_loop: LoopThread
) -> None:
    job_loop.call(attach(checker))

    async def from_the_loop() -> PreState:
        return checker.pre_state(ABSENT, lab.targets)  # blocking: must not wait for itself

    with capture_logs() as logs:
        assert job_loop.call(from_the_loop()) == expected(lab, ABSENT)
    assert checker.on_loop == []
    assert off_loop_reasons(logs) == []  # not a timeout: never submitted
    job_loop.call(checker.aclose())


def test_pre_state_when_the_loop_stalls_should_ask_on_the_pool_after_the_bound(
    lab: Lab, checker: SpyChecker, job_loop: LoopThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch_checker, "LOOP_SLACK_S", 0.0)
    job_loop.call(attach(checker))
    release = threading.Event()
    job_loop.loop.call_soon_threadsafe(release.wait)  # the loop thread is stuck
    try:
        with capture_logs() as logs:
            pre = checker.pre_state(ABSENT, lab.targets)
    finally:
        release.set()
    assert pre == expected(lab, ABSENT)
    assert off_loop_reasons(logs) == ["TimeoutError"]
    job_loop.call(asyncio.sleep(0))  # the loop got to the abandoned submission
    assert checker.on_loop == []  # cancelled before it started
    job_loop.call(checker.aclose())


def test_pre_state_after_aclose_should_ask_on_the_pool(
    lab: Lab, checker: SpyChecker, job_loop: LoopThread
) -> None:
    job_loop.call(attach(checker))
    job_loop.call(checker.aclose())
    job_loop.call(attach(checker))  # ignored once closed
    assert checker.pre_state(PRESENT, lab.targets) == expected(lab, PRESENT)
    assert checker.on_loop == []


@pytest.mark.parametrize("closed", [False, True])
def test_pre_state_after_the_loop_stopped_should_ask_on_the_pool(
    lab: Lab, checker: SpyChecker, job_loop: LoopThread, closed: bool
) -> None:
    job_loop.call(attach(checker))
    job_loop.stop()
    if closed:
        job_loop.close()
    assert checker.pre_state(PRESENT, lab.targets) == expected(lab, PRESENT)
    assert checker.on_loop == []


def test_pre_state_on_the_loop_should_raise_the_errors_of_the_pool_path(
    lab: Lab, checker: SpyChecker, job_loop: LoopThread
) -> None:
    job_loop.call(attach(checker))
    with pytest.raises(StepError, match="no authoritative nameserver") as empty:
        checker.pre_state(ABSENT, [])
    assert empty.value.retryable is False
    with pytest.raises(StepError, match="no authoritative answer") as silent:
        checker.pre_state(ABSENT, [lab.silent])
    assert silent.value.retryable is True
    assert checker.on_loop == [LOOP_THREAD, LOOP_THREAD]
    job_loop.call(checker.aclose())


def test_aclose_should_let_a_pre_state_running_on_the_loop_finish(
    lab: Lab, checker: SpyChecker, job_loop: LoopThread
) -> None:
    job_loop.call(attach(checker))
    targets = [*lab.targets, lab.silent]  # the silent address holds it for one UDP timeout
    with ThreadPoolExecutor(1) as worker, capture_logs() as logs:
        running = worker.submit(checker.pre_state, PRESENT, targets)
        while not checker.on_loop:
            threading.Event().wait(0.01)
        job_loop.call(checker.aclose())
        assert checker.finished == 1  # aclose returned after it
        pre = running.result(timeout=30)
    assert pre == expected(lab, PRESENT, targets)
    assert off_loop_reasons(logs) == []  # answered on the loop, not asked again


def test_pre_state_bound_should_cover_both_fan_outs_in_waves() -> None:
    policy = PropagationPolicy(query_timeout_s=2.0, tcp_timeout_s=3.0, max_parallel=16)
    assert pre_state_bound_s(policy, 2) == 2 * (2.0 + 3.0)
    assert pre_state_bound_s(policy, 17) == 2 * 2 * (2.0 + 3.0)
