"""TurnLock (the SQLite connection's lock): asyncio.Lock's contract, every waiter through in one turn of the loop."""

import asyncio
import random

import pytest

from callgate.storage.turns import TurnLock


class Turns:
    """Counts the event loop's turns: a callback that schedules itself again on every turn."""

    def __init__(self) -> None:
        self.count = 0
        self._handle = asyncio.get_running_loop().call_soon(self._tick)

    def _tick(self) -> None:
        self.count += 1
        self._handle = asyncio.get_running_loop().call_soon(self._tick)

    def stop(self) -> None:
        self._handle.cancel()


class Takers:
    """A TurnLock the test holds, and takers that note their name in ``order`` once they hold it (never two at once)."""

    def __init__(self) -> None:
        self.lock = TurnLock()
        self.order: list[str] = []
        self._inside = 0

    async def take(self, name: str, awaits: int = 0) -> None:
        async with self.lock:
            self._inside += 1
            assert self._inside == 1, "two holders at once"
            self.order.append(name)
            try:
                for _ in range(awaits):
                    await asyncio.sleep(0)      # a holder that awaits (and may be cancelled there)
            finally:
                self._inside -= 1


async def held() -> Takers:
    takers = Takers()
    await takers.lock.acquire()
    return takers


async def test_waiters_take_the_lock_in_the_order_they_came_all_in_one_turn():
    lock = TurnLock()
    await lock.acquire()
    order = []

    async def take(n):
        async with lock:
            order.append((n, turns.count))     # nothing awaited while holding it, as a transaction's statements
    tasks = [asyncio.create_task(take(n)) for n in range(50)]
    await asyncio.sleep(0)              # every one of them is waiting now
    assert order == [] and lock.locked()
    turns = Turns()
    lock.release()
    await asyncio.gather(*tasks)
    turns.stop()
    assert [n for n, _ in order] == list(range(50))
    assert len({turn for _, turn in order}) == 1, order     # asyncio.Lock: a turn for each waiter
    assert not lock.locked()


async def test_a_newcomer_never_goes_before_the_waiters_a_release_woke():
    t = await held()
    waiting = [asyncio.create_task(t.take(n)) for n in ("a", "b")]
    await asyncio.sleep(0)
    t.lock.release()                    # a and b are woken; they run on the next turn
    assert not t.lock.locked()
    await t.take("late")                # free, but a and b came first: this waits for them
    await asyncio.gather(*waiting)
    assert t.order == ["a", "b", "late"]


async def test_a_holder_that_awaits_keeps_the_others_waiting_in_their_order():
    t = await held()
    first = [asyncio.create_task(t.take("a", 3)), asyncio.create_task(t.take("b")), asyncio.create_task(t.take("c", 1))]
    await asyncio.sleep(0)
    t.lock.release()
    # d (this task) comes after the release, before the woken run: on the next turn a takes the lock and holds it
    # across its awaits, b and c find it taken and wait again, still in front of d.
    await t.take("d")
    await asyncio.gather(*first)
    assert t.order == ["a", "b", "c", "d"]
    assert not t.lock.locked()


async def test_a_cancelled_waiter_leaves_the_line_and_holds_nobody_up():
    t = await held()
    tasks = {name: asyncio.create_task(t.take(name)) for name in ("a", "b", "c")}
    await asyncio.sleep(0)
    tasks["b"].cancel()                 # cancelled while waiting
    t.lock.release()
    tasks["a"].cancel()                 # cancelled after the release woke it, before it ran
    results = await asyncio.gather(*tasks.values(), return_exceptions=True)
    assert [type(r).__name__ for r in results] == ["CancelledError", "CancelledError", "NoneType"]
    assert t.order == ["c"] and not t.lock.locked()


async def test_when_the_only_woken_waiter_is_cancelled_a_later_one_still_gets_the_lock():
    lock = TurnLock()
    await lock.acquire()
    gate = asyncio.get_running_loop().create_future()

    async def later():
        await gate
        await lock.acquire()
    late = asyncio.create_task(later())
    woken = asyncio.create_task(lock.acquire())
    await asyncio.sleep(0)
    gate.set_result(None)               # on the next turn late runs first, and waits behind the woken one ...
    lock.release()                      # ... which the release woke,
    woken.cancel()                      # and which then gets CancelledError instead of the lock
    await asyncio.wait_for(late, 1)     # late must not wait forever
    assert woken.cancelled() and lock.locked()
    lock.release()
    assert not lock.locked()


async def test_releasing_a_lock_nobody_holds_is_an_error():
    with pytest.raises(RuntimeError):
        TurnLock().release()


async def test_many_holders_awaiting_and_cancelled_at_random_never_overlap_and_all_others_get_through():
    rng = random.Random(7)
    t = Takers()

    async def take(n):
        for _ in range(rng.randint(0, 2)):
            await asyncio.sleep(0)
        await t.take(str(n), rng.choice((0, 0, 0, 1, 2)))
        return n
    for _ in range(20):
        tasks = [asyncio.create_task(take(n)) for n in range(60)]
        for _ in range(6):
            await asyncio.sleep(0)
            rng.choice(tasks).cancel()
        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5)
        assert [r for r in results if not isinstance(r, (int, asyncio.CancelledError))] == []   # never two holders
        finished = [str(r) for r in results if isinstance(r, int)]
        # every one not cancelled took the lock (some took it and were cancelled while holding it), each once
        assert set(finished) <= set(t.order) and len(set(t.order)) == len(t.order)
        assert not t.lock.locked()
        t.order.clear()
