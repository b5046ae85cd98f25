"""run_sync / blocking: one coroutine body run synchronously, with no event loop."""

from __future__ import annotations

import asyncio
import threading

import pytest

from cname_flow.propagation.blocking import blocking, run_sync


async def doubled() -> int:
    fetch = blocking(lambda: 21)
    return 2 * await fetch()


def test_run_sync_should_return_the_result_in_the_calling_thread() -> None:
    seen: list[str] = []

    def note() -> str:
        seen.append(threading.current_thread().name)
        return "done"

    assert run_sync(blocking(note)()) == "done"
    assert seen == [threading.current_thread().name]
    assert run_sync(doubled()) == 42


def test_run_sync_should_raise_what_the_coroutine_raises() -> None:
    def fail() -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        run_sync(blocking(fail)())


def test_run_sync_when_the_coroutine_suspends_should_refuse_and_close_it() -> None:
    closed: list[bool] = []

    async def sleeps() -> None:
        try:
            await asyncio.sleep(0)  # yields to an event loop there is none of
        finally:
            closed.append(True)

    with pytest.raises(RuntimeError, match="suspended"):
        run_sync(sleeps())
    assert closed == [True]


def test_run_sync_should_work_in_a_thread_whose_loop_is_running() -> None:
    async def inside() -> int:
        return run_sync(blocking(len)("abc"))

    assert asyncio.run(inside()) == 3
