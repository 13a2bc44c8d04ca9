"""Promise 8: LoggingContext restores on exit, nests, is safe across asyncio tasks, and can be carried."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from logcapture import Lines, attach
from obskit import LoggingContext
from obskit.logging import JsonFormatter

HEX32 = re.compile(r"^[0-9a-f]{32}$")
LOGGER = "tests.context"


def fields() -> dict[str, Any]:
    return dict(LoggingContext.current())


@pytest.fixture
def json_log() -> Iterator[tuple[logging.Logger, Lines]]:
    yield from attach(JsonFormatter(), LOGGER)


@pytest.fixture(autouse=True)
def _no_context_leaks() -> Iterator[None]:
    """Every test starts and ends outside any LoggingContext."""
    assert fields() == {}
    yield
    assert fields() == {}


# -- with / async with ---------------------------------------------------------------------------


def test_with_block_binds_fields_and_restores_them_on_exit():
    with LoggingContext(request_id="r-1", user_id="u-1", tenant="acme") as bound:
        assert fields() == {"request_id": "r-1", "user_id": "u-1", "tenant": "acme"}
        assert dict(bound) == fields()
    assert fields() == {}


def test_fields_are_restored_when_the_block_raises():
    with pytest.raises(KeyError), LoggingContext(request_id="r-1"):
        raise KeyError("boom")
    assert fields() == {}


def test_exception_passes_through_the_block_unchanged():
    error = ValueError("same object")
    with pytest.raises(ValueError, match="same object") as caught, LoggingContext(user_id="u"):
        raise error
    assert caught.value is error


def test_none_values_are_ignored():
    with LoggingContext(request_id="r", user_id="outer-user"), LoggingContext(user_id=None, extra_field=None):
        assert fields() == {"request_id": "r", "user_id": "outer-user"}


async def test_async_with_binds_and_restores():
    async with LoggingContext(request_id="r-a", user_id="u-a") as bound:
        assert fields() == {"request_id": "r-a", "user_id": "u-a"}
        await asyncio.sleep(0)
        assert fields() == dict(bound)
    assert fields() == {}


async def test_async_with_restores_when_the_body_raises():
    async def fail_inside() -> None:
        async with LoggingContext(request_id="r"):
            await asyncio.sleep(0)
            raise RuntimeError("x")

    with pytest.raises(RuntimeError, match="x"):
        await fail_inside()
    assert fields() == {}


def test_fields_appear_on_log_lines_only_inside_the_block(json_log):
    logger, lines = json_log
    with LoggingContext(request_id="r-9", user_id="u-9", order="o-1"):
        logger.info("inside")
    logger.info("outside")
    inside, outside = lines.parsed()
    assert (inside["request_id"], inside["user_id"], inside["order"]) == ("r-9", "u-9", "o-1")
    assert not {"request_id", "user_id", "order"} & outside.keys()


# -- nesting -------------------------------------------------------------------------------------


def test_nesting_merges_overrides_and_restores():
    with LoggingContext(request_id="r-1", user_id="u-1", tenant="acme"):
        with LoggingContext(user_id="u-2", job="j-1"):
            assert fields() == {"request_id": "r-1", "user_id": "u-2", "tenant": "acme", "job": "j-1"}
            with LoggingContext(request_id="r-inner"):
                assert fields()["request_id"] == "r-inner"
                assert fields()["job"] == "j-1"
            assert fields() == {"request_id": "r-1", "user_id": "u-2", "tenant": "acme", "job": "j-1"}
        assert fields() == {"request_id": "r-1", "user_id": "u-1", "tenant": "acme"}
    assert fields() == {}


def test_the_same_instance_can_be_nested_and_reused():
    ctx = LoggingContext(request_id="r", user_id="u")
    with ctx:
        with LoggingContext(user_id="other"):
            with ctx:
                assert fields()["user_id"] == "u"
            assert fields()["user_id"] == "other"
        assert fields()["user_id"] == "u"
    assert fields() == {}
    with ctx:
        assert fields() == {"request_id": "r", "user_id": "u"}
    assert fields() == {}


# -- request_id ----------------------------------------------------------------------------------


def test_request_id_is_generated_when_none_given_and_none_active():
    with LoggingContext(user_id="u") as bound:
        assert HEX32.match(bound["request_id"])
        assert fields()["request_id"] == bound["request_id"]


def test_each_entry_generates_a_new_request_id():
    ids = set()
    for _ in range(20):
        with LoggingContext() as bound:
            ids.add(bound["request_id"])
    assert len(ids) == 20
    assert all(HEX32.match(i) for i in ids)


def test_nested_context_keeps_the_outer_request_id():
    with LoggingContext(request_id="outer-id"), LoggingContext(user_id="u"):
        assert fields()["request_id"] == "outer-id"
    with LoggingContext() as outer, LoggingContext(job="j"):
        assert fields()["request_id"] == outer["request_id"]


def test_explicit_request_id_is_kept_verbatim():
    with LoggingContext(request_id="Req-ABC_1"):
        assert fields()["request_id"] == "Req-ABC_1"


# -- read-only view ------------------------------------------------------------------------------


def test_current_returns_a_read_only_mapping():
    empty = LoggingContext.current()
    with pytest.raises(TypeError):
        empty["x"] = 1  # type: ignore[index]
    with LoggingContext(request_id="r", user_id="u") as bound:
        current = LoggingContext.current()
        with pytest.raises(TypeError):
            current["user_id"] = "hacked"  # type: ignore[index]
        with pytest.raises(TypeError):
            del current["request_id"]  # type: ignore[attr-defined]
        with pytest.raises(TypeError):
            bound["user_id"] = "hacked"  # type: ignore[index]
        assert not hasattr(current, "update") or not callable(getattr(current, "update", None))
        assert fields()["user_id"] == "u"


def test_a_view_taken_inside_is_not_changed_by_later_contexts():
    with LoggingContext(request_id="r", user_id="u"):
        snapshot = LoggingContext.current()
        with LoggingContext(user_id="v", extra="e"):
            pass
        assert dict(snapshot) == {"request_id": "r", "user_id": "u"}


def test_changing_the_input_dict_after_creation_does_not_change_the_context():
    kwargs = {"tenant": "acme"}
    ctx = LoggingContext(**kwargs)
    kwargs["tenant"] = "evil"
    with ctx:
        assert fields()["tenant"] == "acme"


# -- decorator -----------------------------------------------------------------------------------


def test_decorator_on_sync_function_binds_during_the_call_only():
    @LoggingContext(user_id="u-dec", component="billing")
    def work(x: int) -> dict[str, Any]:
        return {"x": x, **fields()}

    result = work(3)
    assert result["x"] == 3
    assert result["user_id"] == "u-dec"
    assert result["component"] == "billing"
    assert HEX32.match(result["request_id"])
    assert fields() == {}


def test_decorator_restores_when_the_function_raises():
    error = LookupError("kept")

    @LoggingContext(user_id="u")
    def fail() -> None:
        raise error

    with pytest.raises(LookupError) as caught:
        fail()
    assert caught.value is error
    assert fields() == {}


def test_decorator_generates_a_fresh_request_id_per_call():
    @LoggingContext(user_id="u")
    def request_id() -> str:
        return str(fields()["request_id"])

    ids = [request_id() for _ in range(10)]
    assert len(set(ids)) == 10
    assert all(HEX32.match(i) for i in ids)


def test_decorator_keeps_an_active_request_id():
    @LoggingContext(user_id="inner-user")
    def current() -> dict[str, Any]:
        return fields()

    with LoggingContext(request_id="outer", user_id="outer-user", tenant="t"):
        seen = current()
        assert fields()["user_id"] == "outer-user"
    assert seen == {"request_id": "outer", "user_id": "inner-user", "tenant": "t"}


def test_decorator_with_explicit_request_id_uses_it_every_call():
    @LoggingContext(request_id="fixed")
    def current() -> str:
        return str(fields()["request_id"])

    assert [current(), current()] == ["fixed", "fixed"]


def test_decorator_keeps_function_kind_signature_and_name():
    def plain(a: int, b: str = "x") -> str:
        return b * a

    async def coro(a: int) -> int:
        return a

    def gen(n: int) -> Iterator[int]:
        yield from range(n)

    async def agen(n: int) -> Any:
        for i in range(n):
            yield i

    ctx = LoggingContext(user_id="u")
    for func, check in [
        (plain, inspect.isfunction),
        (coro, inspect.iscoroutinefunction),
        (gen, inspect.isgeneratorfunction),
        (agen, inspect.isasyncgenfunction),
    ]:
        wrapped = ctx(func)
        assert check(wrapped), func.__name__
        assert wrapped.__name__ == func.__name__
        assert inspect.signature(wrapped) == inspect.signature(func)
    assert ctx(plain)(2, "ab") == "abab"


async def test_decorator_on_async_function():
    @LoggingContext(user_id="u-async")
    async def work() -> dict[str, Any]:
        before = fields()
        await asyncio.sleep(0.001)
        after = fields()
        assert before == after
        return after

    first, second = await asyncio.gather(work(), work())
    assert first["user_id"] == second["user_id"] == "u-async"
    assert first["request_id"] != second["request_id"]
    assert fields() == {}


def test_decorator_on_generator_binds_only_while_its_body_runs():
    seen: list[dict[str, Any]] = []

    @LoggingContext(user_id="u-gen")
    def produce(n: int) -> Iterator[int]:
        for i in range(n):
            seen.append(fields())
            received = yield i
            if received is not None:
                seen.append({"received": received, **fields()})
        return None

    gen = produce(3)
    assert fields() == {}, "nothing is bound before the generator starts"
    assert next(gen) == 0
    assert fields() == {}, "the caller does not see the generator's context between items"
    assert gen.send("hello") == 1
    assert fields() == {}
    assert list(gen) == [2]
    assert fields() == {}
    assert all(s["user_id"] == "u-gen" for s in seen)
    assert {s["request_id"] for s in seen} == {seen[0]["request_id"]}, "one request_id per call"
    assert {"received": "hello"}.items() <= seen[1].items()


def test_decorator_on_generator_sees_the_callers_context_under_its_own():
    @LoggingContext(component="gen")
    def produce() -> Iterator[dict[str, Any]]:
        yield fields()

    with LoggingContext(request_id="outer", user_id="caller"):
        (inside,) = list(produce())
    assert inside == {"request_id": "outer", "user_id": "caller", "component": "gen"}


def test_decorator_on_generator_closed_early_leaves_nothing_bound():
    @LoggingContext(user_id="u")
    def produce() -> Iterator[int]:
        yield 1
        yield 2

    gen = produce()
    assert next(gen) == 1
    gen.close()
    assert fields() == {}


async def test_decorator_on_async_generator_binds_only_while_its_body_runs():
    seen: list[dict[str, Any]] = []

    @LoggingContext(user_id="u-agen")
    async def produce(n: int) -> Any:
        for i in range(n):
            seen.append(fields())
            await asyncio.sleep(0)
            yield i

    items = []
    async for item in produce(3):
        assert fields() == {}, "the consumer does not see the generator's context"
        items.append(item)
    assert items == [0, 1, 2]
    assert fields() == {}
    assert all(s["user_id"] == "u-agen" for s in seen)
    assert len({s["request_id"] for s in seen}) == 1


def test_decorated_function_logs_carry_the_fields(json_log):
    logger, lines = json_log

    @LoggingContext(user_id="u-log")
    def handle() -> None:
        logger.info("handled")

    handle()
    handle()
    first, second = lines.parsed()
    assert first["user_id"] == second["user_id"] == "u-log"
    assert first["request_id"] != second["request_id"]


# -- asyncio tasks -------------------------------------------------------------------------------


async def test_concurrent_tasks_never_see_each_others_values(json_log):
    logger, lines = json_log
    results: dict[int, list[dict[str, Any]]] = {}

    async def handle(i: int) -> None:
        observed = results.setdefault(i, [])
        async with LoggingContext(request_id=f"req-{i}", user_id=f"user-{i}"):
            for step in range(5):
                observed.append(fields())
                logger.info("task %d step %d", i, step)
                await asyncio.sleep(0.001 * ((i + step) % 3))
            async with LoggingContext(step="nested"):
                await asyncio.sleep(0)
                observed.append(fields())
            observed.append(fields())
        observed.append(fields())

    await asyncio.gather(*(handle(i) for i in range(8)))
    for i, observed in results.items():
        mine = {"request_id": f"req-{i}", "user_id": f"user-{i}"}
        assert observed[:5] == [mine] * 5
        assert observed[5] == {**mine, "step": "nested"}
        assert observed[6] == mine
        assert observed[7] == {}
    records = lines.parsed()
    assert len(records) == 40
    for record in records:
        task = record["message"].split()[1]
        assert record["request_id"] == f"req-{task}"
        assert record["user_id"] == f"user-{task}"


async def test_a_task_started_inside_a_context_inherits_it_but_cannot_change_the_parent():
    async def child() -> dict[str, Any]:
        with LoggingContext(user_id="child"):
            await asyncio.sleep(0)
            return fields()

    async with LoggingContext(request_id="parent", user_id="parent-user"):
        seen = await asyncio.create_task(child())
        assert fields() == {"request_id": "parent", "user_id": "parent-user"}
    assert seen == {"request_id": "parent", "user_id": "child"}


async def test_one_shared_instance_entered_by_concurrent_tasks_exits_cleanly():
    shared = LoggingContext(component="worker")

    async def handle(i: int, delay: float) -> dict[str, Any]:
        async with LoggingContext(user_id=f"u-{i}"):
            async with shared:
                await asyncio.sleep(delay)
                seen = fields()
            assert fields()["user_id"] == f"u-{i}"
            assert "component" not in fields()
        return seen

    # the first to enter is the first to leave: exits do not happen in reverse order of entries
    results = await asyncio.gather(handle(0, 0.001), handle(1, 0.02), handle(2, 0.01))
    for i, seen in enumerate(results):
        assert seen["component"] == "worker"
        assert seen["user_id"] == f"u-{i}"
    assert len({seen["request_id"] for seen in results}) == 3


def test_one_shared_instance_entered_by_threads_exits_cleanly():
    shared = LoggingContext(component="pool")
    barrier = threading.Barrier(4, timeout=10)
    errors: list[BaseException] = []
    seen: list[dict[str, Any]] = []

    def work(i: int) -> None:
        try:
            with shared:
                barrier.wait()
                seen.append(fields())
                barrier.wait()
                if i % 2:
                    return
            assert fields() == {}
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(seen) == 4
    assert all(s["component"] == "pool" for s in seen)


# -- threads -------------------------------------------------------------------------------------


def test_a_plain_thread_does_not_see_the_context_unless_carried():
    """Documented behaviour: contextvars are per thread; a new Thread starts empty."""
    seen: list[dict[str, Any]] = []
    with LoggingContext(request_id="r-main", user_id="u-main"):
        thread = threading.Thread(target=lambda: seen.append(fields()))
        thread.start()
        thread.join()
    assert seen == [{}]


def test_copy_context_run_carries_the_context_into_a_thread():
    seen: list[dict[str, Any]] = []
    with LoggingContext(request_id="r-main", user_id="u-main"):
        ctx = contextvars.copy_context()
        thread = threading.Thread(target=ctx.run, args=(lambda: seen.append(fields()),))
        thread.start()
        thread.join()
    assert seen == [{"request_id": "r-main", "user_id": "u-main"}]


def test_copy_context_run_in_a_thread_pool_and_changes_there_stay_there():
    def in_worker() -> tuple[dict[str, Any], dict[str, Any]]:
        before = fields()
        with LoggingContext(step="worker"):
            inner = fields()
        return before, inner

    with LoggingContext(request_id="r", user_id="u"):
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = [pool.submit(contextvars.copy_context().run, in_worker) for _ in range(4)]
            results = [f.result() for f in futures]
        assert fields() == {"request_id": "r", "user_id": "u"}
    for before, inner in results:
        assert before == {"request_id": "r", "user_id": "u"}
        assert inner == {"request_id": "r", "user_id": "u", "step": "worker"}


def test_reentering_current_fields_in_a_thread_carries_them():
    seen: list[dict[str, Any]] = []
    with LoggingContext(request_id="r-main", user_id="u-main"):
        carried = dict(LoggingContext.current())

        def work() -> None:
            with LoggingContext(**carried):
                seen.append(fields())
            seen.append(fields())

        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
    assert seen == [{"request_id": "r-main", "user_id": "u-main"}, {}]


async def test_asyncio_to_thread_carries_the_context():
    async with LoggingContext(request_id="r-async", user_id="u-async"):
        seen = await asyncio.to_thread(fields)
    assert seen == {"request_id": "r-async", "user_id": "u-async"}


async def test_run_in_executor_without_copy_does_not_carry_the_context():
    loop = asyncio.get_running_loop()
    async with LoggingContext(request_id="r-exec"):
        with ThreadPoolExecutor(max_workers=1) as pool:
            plain = await loop.run_in_executor(pool, fields)
            carried = await loop.run_in_executor(pool, contextvars.copy_context().run, fields)
    assert plain == {}
    assert carried == {"request_id": "r-exec"}


def test_log_lines_from_a_carried_thread_have_the_fields_and_plain_threads_not(json_log):
    logger, lines = json_log
    with LoggingContext(request_id="r-t", user_id="u-t"):
        carried = threading.Thread(target=contextvars.copy_context().run, args=(logger.info, "carried"))
        plain = threading.Thread(target=logger.info, args=("plain",))
        carried.start()
        carried.join()
        plain.start()
        plain.join()
    by_message = {r["message"]: r for r in lines.parsed()}
    assert by_message["carried"]["request_id"] == "r-t"
    assert by_message["carried"]["user_id"] == "u-t"
    assert "request_id" not in by_message["plain"]


def test_threads_with_their_own_contexts_do_not_mix():
    results: dict[int, list[dict[str, Any]]] = {}
    barrier = threading.Barrier(6, timeout=10)

    def work(i: int) -> None:
        with LoggingContext(request_id=f"r-{i}", user_id=f"u-{i}"):
            barrier.wait()
            results[i] = [fields() for _ in range(200)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, seen in results.items():
        assert all(s == {"request_id": f"r-{i}", "user_id": f"u-{i}"} for s in seen)
