"""The server's admission of big images: slots, a bounded queue, a wait limit, handover."""

from __future__ import annotations

import asyncio
import threading

import pytest

from sod100k.server.limits import Admission, AdmissionRefused


def test_waiters_are_served_in_order_as_slots_come_free():
    async def scenario() -> list[str]:
        admission = Admission(slots=1, queue_size=2, queue_timeout=5)
        order: list[str] = []
        await admission.acquire()

        async def wait(name: str) -> None:
            await admission.acquire()
            order.append(name)

        first = asyncio.create_task(wait("first"))
        await asyncio.sleep(0.01)
        second = asyncio.create_task(wait("second"))
        await asyncio.sleep(0.01)
        assert admission.waiting == 2
        with pytest.raises(AdmissionRefused, match="2 already waiting"):
            await admission.acquire()  # the queue is full: refused at once
        # released from another thread, as the server's worker threads do
        threading.Thread(target=admission.release).start()
        await first
        assert order == ["first"] and admission.waiting == 1
        admission.release()
        await second
        admission.release()
        assert admission.try_acquire()  # every slot is back
        return order

    assert asyncio.run(scenario()) == ["first", "second"]


def test_a_wait_runs_out_and_a_cancelled_waiter_leaves_the_queue():
    async def scenario() -> None:
        admission = Admission(slots=1, queue_size=4, queue_timeout=0.2)
        await admission.acquire()
        with pytest.raises(AdmissionRefused, match=r"no slot within 0\.2 s"):
            await admission.acquire()
        waiter = asyncio.create_task(admission.acquire())
        await asyncio.sleep(0.01)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert admission.waiting == 0
        admission.release()
        assert admission.try_acquire() and not admission.try_acquire()

    asyncio.run(scenario())


def test_queue_size_zero_refuses_whenever_the_slots_are_busy():
    async def scenario() -> None:
        admission = Admission(slots=2, queue_size=0)
        await admission.acquire()
        await admission.acquire()
        with pytest.raises(AdmissionRefused):
            await admission.acquire()

    asyncio.run(scenario())
