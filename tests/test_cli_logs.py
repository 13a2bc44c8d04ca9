from __future__ import annotations

import ast
import asyncio
import contextlib
import gzip
import io
import json
import logging
import random
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import obskit
import obskit.asgi
import obskit.testing
from obskit._cli import _logsummary as _logsummary
from obskit._cli import main
from obskit._cli._logsummary import Summary, normalize, summarize
from obskit.logging import JsonFormatter

SRC = Path(__file__).resolve().parent.parent / "src" / "obskit"
BASE = 1_790_000_000.0  # 2026-09-21T...Z: a fixed clock for the lines' timestamps
LOGGERS = ("shop.orders", "shop.db", "http.access")


class _Clock(logging.Filter):
    """Gives each record the next whole second after BASE, so timestamps are known and distinct."""

    def __init__(self) -> None:
        super().__init__()
        self.tick = 0

    def filter(self, record: logging.LogRecord) -> bool:
        record.created = BASE + self.tick
        self.tick += 1
        return True


class Producer:
    """Real obskit JSON lines: stdlib loggers through obskit's JsonFormatter, in a known clock."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(JsonFormatter())
        self.handler.addFilter(_Clock())

    def lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def at(self, tick: int) -> str:
        """The timestamp JsonFormatter writes for the record given ``tick``."""
        line = JsonFormatter().format(logging.makeLogRecord({"created": BASE + tick, "msg": ""}))
        return str(json.loads(line)["timestamp"])


@pytest.fixture
def producer() -> Iterator[Producer]:
    obskit.configure(
        service_name="shop", logs_exporter="none", traces_exporter="none", metrics_exporter="none"
    )
    made = Producer()
    saved = []
    for name in LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, logger.propagate))
        logger.addHandler(made.handler)
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
    with obskit.testing.capture():  # a real tracer: lines inside spans carry trace/span ids
        yield made
    for logger, level, propagate in saved:
        logger.removeHandler(made.handler)
        logger.setLevel(level)
        logger.propagate = propagate


def _charge(card: int) -> None:
    raise ValueError(f"card {card} declined by issuer")


def _shop_day(producer: Producer) -> list[str]:
    """Three payment failures with stacks, two refused connections, warnings and info lines."""
    orders, db = logging.getLogger("shop.orders"), logging.getLogger("shop.db")
    orders.info("service started on port 8000")
    for i in range(3):
        with obskit.LoggingContext(request_id=f"req-{i}"), obskit.trace_operation("checkout"):
            try:
                _charge(4000 + i)
            except ValueError:
                orders.exception("payment %s failed after %dms", f"pay_{i}7f3a9c2e1b", 120 + i)
    for i in range(2):
        db.error("connection to %s refused", f"10.0.0.{i + 1}:5432")
    for user in (17, 23, 99, 123456):
        orders.warning("cache miss for user %d", user)
    orders.info("order %d shipped", 5)
    return producer.lines()


def _by_pattern(summary: Summary) -> dict[str, Any]:
    return {g.pattern: g for g in summary.groups()}


# -- the engine --------------------------------------------------------------------------------


def test_error_lines_group_by_logger_exception_type_and_pattern(producer: Producer) -> None:
    summary = summarize(_shop_day(producer))

    payment, refused = summary.groups()
    assert (payment.logger, payment.exception_type, payment.count) == ("shop.orders", "ValueError", 3)
    assert payment.pattern == "payment pay_<id> failed after <duration>"
    assert payment.levels == {"ERROR": 3}
    assert payment.sample_message == "payment pay_27f3a9c2e1b failed after 122ms"
    assert payment.sample_request_id == "req-2"
    assert len(payment.sample_trace_id) == 32
    assert payment.exception_message == "card 4002 declined by issuer"
    assert payment.exception_last_line == "ValueError: card 4002 declined by issuer"
    assert (refused.logger, refused.exception_type, refused.count) == ("shop.db", "", 2)
    assert refused.pattern == "connection to <ip> refused"


def test_sample_ids_are_those_of_the_sampled_line(producer: Producer) -> None:
    lines = _shop_day(producer)
    [group] = [g for g in summarize(lines).groups() if g.exception_type]
    [line] = [json.loads(x) for x in lines if "req-2" in x and "payment" in x]
    assert (group.sample_request_id, group.sample_trace_id) == (line["request_id"], line["trace_id"])


def test_first_and_last_seen_come_from_timestamps_not_line_order(producer: Producer) -> None:
    lines = _shop_day(producer)
    shuffled = lines[:]
    random.Random(7).shuffle(shuffled)
    for order in (lines, lines[::-1], shuffled):
        payment = summarize(order).groups()[0]
        # ticks: 0 is the info line, 1-3 the three payment failures
        assert (payment.first_seen, payment.last_seen) == (producer.at(1), producer.at(3))
        assert payment.sample_request_id == "req-2"  # the sample is the latest line


def test_counts_in_the_header(producer: Producer) -> None:
    summary = summarize(_shop_day(producer))
    assert (summary.lines_read, summary.json_lines, summary.skipped_lines) == (11, 11, 0)
    assert (summary.error_lines, len(summary.groups())) == (5, 2)


def test_level_warning_includes_warnings(producer: Producer) -> None:
    summary = summarize(_shop_day(producer), min_level="warning")
    assert summary.error_lines == 9
    cache = _by_pattern(summary)["cache miss for user <n>"]
    assert (cache.count, cache.levels) == (4, {"WARNING": 4})
    assert summary.groups()[0] is cache  # the largest group first


def test_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown level 'loud'"):
        summarize([], min_level="loud")


def test_groups_are_sorted_by_count_then_first_seen() -> None:
    def line(second: int, message: str) -> str:
        return json.dumps(
            {
                "timestamp": f"2026-01-01T00:00:{second:02d}.000Z",
                "level": "ERROR",
                "logger": "a",
                "message": message,
            }
        )

    lines = [line(5, "late 1"), line(1, "early 1"), line(2, "big 1"), line(3, "big 2"), line(4, "big 3")]
    assert [g.pattern for g in summarize(lines).groups()] == ["big <n>", "early <n>", "late <n>"]


GARBAGE = [
    "",
    "   ",
    "INFO:     Started server process [4242]",
    'INFO:     127.0.0.1:53422 - "GET /orders HTTP/1.1" 500 Internal Server Error',
    '{"timestamp":"2026-01-01T00:00:00.000Z","level":"ERROR","logger":"x","mess',  # truncated write
    "[1, 2, 3]",
    "42",
    '"just a string"',
    "{" + '"a":' + "[" * 100_000 + "]" * 100_000 + "}",  # deeper than json's recursion limit
    b"\x00\x01\xfe\xff binary \x89PNG\r\n",
    b"\xc3\x28 invalid utf-8 \xa0\xa1",
]


def test_lines_that_are_not_json_objects_are_counted_and_skipped(producer: Producer) -> None:
    lines: list[str | bytes] = [*_shop_day(producer)]
    for i, junk in enumerate(GARBAGE):
        lines.insert(2 * i, junk)
    summary = summarize(lines)
    assert (summary.lines_read, summary.json_lines, summary.skipped_lines) == (22, 11, 11)
    assert [g.count for g in summary.groups()] == [3, 2]


def test_a_json_line_with_invalid_utf8_in_a_value_still_counts(producer: Producer) -> None:
    logging.getLogger("shop.db").error("disk %s full", "sda1")
    raw = producer.lines()[0].encode().replace(b"sda1", b"sd\xff1")
    summary = summarize([raw])
    assert (summary.json_lines, summary.error_lines) == (1, 1)
    assert summary.groups()[0].sample_message == "disk sd\ufffd1 full"


@pytest.mark.parametrize(
    ("message", "pattern"),
    [
        ("user 42 not found", "user <n> not found"),
        ("order42 /orders/123/items", "order<n> /orders/<n>/items"),
        ("retry 3 of 5 took 1.5s", "retry <n> of <n> took <duration>"),
        ("timed out after 30 seconds (250 ms budget)", "timed out after <duration> (<duration> budget)"),
        ("job 550e8400-e29b-41d4-a716-446655440000 lost", "job <uuid> lost"),
        ("span 4bf92f3577b34da6a3ce929d0e0e4736 dropped", "span <id> dropped"),
        ("token 01HZX3K9Q8Y7W6V5T4S3R2P1N0 expired", "token <id> expired"),
        ("charge ch_3Nq8Zk2eZvKYlo2C1a2b3c4d for cus_9f8e7d6c5b", "charge ch_<id> for cus_<id>"),
        ("request req-4f2a9c1e and user_1234", "request req-<id> and user_<n>"),
        ("object <Conn at 0x7f3a2b9c> closed", "object <Conn at <hex>> closed"),
        ("KeyError: 'user_id'", "KeyError: <str>"),
        ('missing "tenant" header', "missing <str> header"),
        ("can't reach 'db-primary'", "can't reach <str>"),
        ("mail to bob.smith+x@example.co.uk bounced", "mail to <email> bounced"),
        ("peer 192.168.1.20:6379 reset", "peer <ip> reset"),
        ("peer fe80::1ff:fe23:4567:890a and ::1 down", "peer <ip> and <ip> down"),
        ("GET https://api.example.com/v1/items?id=7 failed", "GET <url> failed"),
        ("stale since 2026-01-02T03:04:05.678Z", "stale since <ts>"),
        ("batch for 2026-01-02 late", "batch for <ts> late"),
        ("deadbeef cafe is a word, cafe1234 is an id", "deadbeef cafe is a word, <id> is an id"),
        ("std::vector and 12:30:45", "std::vector and <n>:<n>:<n>"),
        ("no variables here", "no variables here"),
    ],
)
def test_normalize_replaces_variable_parts(message: str, pattern: str) -> None:
    assert normalize(message) == pattern


def test_normalize_looks_at_a_bounded_prefix() -> None:
    assert normalize("x" * 10_000 + " 1") == "x" * 2_000


def test_access_lines_are_grouped_by_route_and_counted_per_route(producer: Producer) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"].endswith("/boom"):
            raise RuntimeError(f"boom at {scope['path']}")
        status = 503 if scope["path"].startswith("/orders") else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = obskit.asgi.middleware(app)

    async def call(method: str, path: str, route: str) -> None:
        scope = {"type": "http", "method": method, "path": path, "headers": [], "query_string": b""}
        scope["route"] = SimpleNamespace(path=route)

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        async def send(message: Any) -> None:
            pass

        with contextlib.suppress(RuntimeError):  # the app's error reaches the server, as it should
            await middleware(scope, receive, send)

    async def traffic() -> None:
        for i in range(3):
            await call("GET", f"/orders/{i}", "/orders/{order_id}")
        await call("POST", "/carts/9/boom", "/carts/{cart_id}/boom")
        await call("GET", "/health-ish", "/health-ish")

    asyncio.run(traffic())
    summary = summarize(producer.lines())

    assert summary.access_lines == 5
    assert summary.routes_5xx() == [("GET", "/orders/{order_id}", 3), ("POST", "/carts/{cart_id}/boom", 1)]
    groups = _by_pattern(summary)
    assert groups["GET /orders/{order_id} 503"].count == 3
    boom = groups["POST /carts/{cart_id}/boom 500"]
    assert (boom.exception_type, boom.exception_last_line) == (
        "RuntimeError",
        "RuntimeError: boom at /carts/9/boom",
    )
    assert len(summary.groups()) == 2  # the 200 is not an error


def test_groups_and_routes_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_logsummary, "MAX_GROUPS", 2)
    monkeypatch.setattr(_logsummary, "MAX_ROUTES", 1)

    def line(logger: str, **fields: Any) -> str:
        return json.dumps({"level": "ERROR", "logger": logger, "message": "m", **fields})

    lines = [line(f"l{i}") for i in range(4)] + [line("l0")]
    lines += [line("http.access", method="GET", route=f"/r{i}", status=500) for i in range(2)]
    summary = summarize(lines)
    assert [(g.logger, g.count) for g in summary.groups()] == [("l0", 2), ("l1", 1)]
    assert summary.overflow_lines == 4  # l2, l3 and the two access lines' groups
    assert summary.routes_5xx() == [("GET", "/r0", 1)]


def _large_lines(count: int) -> Iterator[str]:
    """``count`` real obskit lines made one at a time: errors of three patterns amid info lines."""
    formatter = JsonFormatter()
    kinds = [
        (logging.INFO, "shop.orders", "order %d shipped"),
        (logging.ERROR, "shop.db", "connection to 10.0.%d.1:5432 refused"),
        (logging.INFO, "shop.orders", "order %d paid"),
        (logging.ERROR, "shop.orders", "payment %d declined"),
        (logging.INFO, "shop.orders", "cart %d updated"),
        (logging.CRITICAL, "shop.db", "pool exhausted after %dms"),
        (logging.INFO, "shop.orders", "user %d logged in"),
        (logging.INFO, "shop.orders", "user %d logged out"),
    ]
    for i in range(count):
        level, name, message = kinds[i % len(kinds)]
        record = logging.LogRecord(name, level, __file__, 1, message, (i % 250,), None)
        record.created = BASE + i
        yield formatter.format(record) + "\n"


def _stamp(tick: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(BASE + tick))


def test_a_large_file_is_summarised(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "big.log"
    with path.open("w", encoding="utf-8") as out:
        out.writelines(_large_lines(200_000))

    status = main(["logs", "summarize", "--format", "json", str(path)])

    assert status == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["lines_read"], report["json_lines"], report["error_lines"]) == (200_000, 200_000, 75_000)
    assert [(g["pattern"], g["count"]) for g in report["groups"]] == [
        ("connection to <ip> refused", 25_000),
        ("payment <n> declined", 25_000),
        ("pool exhausted after <duration>", 25_000),
    ]
    assert report["groups"][0]["levels"] == {"ERROR": 25_000}
    assert report["groups"][2]["levels"] == {"CRITICAL": 25_000}
    # the first connection error is line 1, the last line 199_993
    assert report["groups"][0]["first_seen"] == _stamp(1)
    assert report["groups"][0]["last_seen"] == _stamp(199_993)


def test_lines_are_not_kept() -> None:
    # 20k lines (~2 MB) made and consumed one at a time: the peak is the groups, not the input.
    tracemalloc.start()
    try:
        summary = summarize(_large_lines(20_000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert summary.error_lines == 7_500
    assert peak < 200_000


# -- the command -------------------------------------------------------------------------------


@pytest.fixture
def day_file(producer: Producer, tmp_path: Path) -> Path:
    path = tmp_path / "app.log"
    lines: list[str | bytes] = [*_shop_day(producer)]
    lines[3:3] = GARBAGE
    with path.open("wb") as out:
        for line in lines:
            out.write((line if isinstance(line, bytes) else line.encode()) + b"\n")
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["logs", "summarize", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_text_report_has_counts_then_one_block_per_group(
    day_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = _run(capsys, str(day_file))
    assert (status, err) == (0, "")
    head, payment, refused = out.split("\n\n")
    assert head.splitlines() == [
        "obskit log summary",
        "  lines read           23",
        "  JSON lines           11",
        "  skipped              12  (blank or not JSON)",
        "  error lines           5  (level ERROR and above)",
        "  groups                2",
    ]
    assert payment.splitlines()[0] == "#1  3x  shop.orders  ValueError"
    assert "    pattern     payment pay_<id> failed after <duration>" in payment.splitlines()
    assert "    exception   ValueError: card 4002 declined by issuer" in payment.splitlines()
    assert "    request_id  req-2" in payment.splitlines()
    assert refused.splitlines()[0] == "#2  2x  shop.db"
    assert "trace_id" not in refused  # logged outside any span: no id to show


def test_top_limits_the_groups_shown_not_the_counts(
    day_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = _run(capsys, "--top", "1", str(day_file))
    assert "  groups                2  (showing 1)" in out.splitlines()
    assert "#1  3x" in out
    assert "#2" not in out
    _, out, _ = _run(capsys, "--top", "1", "--format", "json", str(day_file))
    report = json.loads(out)
    assert (report["group_count"], len(report["groups"])) == (2, 1)
    _, out, _ = _run(capsys, "--top", "0", "--format", "json", "--level", "WARNING", str(day_file))
    assert len(json.loads(out)["groups"]) == 3


def test_json_report_shape(day_file: Path, producer: Producer, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(capsys, "--format", "json", str(day_file))
    report = json.loads(out)
    assert status == 0
    assert list(report) == [
        "min_level",
        "lines_read",
        "json_lines",
        "skipped_lines",
        "error_lines",
        "group_count",
        "overflow_lines",
        "access_lines",
        "groups",
        "routes_5xx",
    ]
    payment = report["groups"][0]
    assert payment == {
        "count": 3,
        "logger": "shop.orders",
        "exception_type": "ValueError",
        "pattern": "payment pay_<id> failed after <duration>",
        "first_seen": producer.at(1),
        "last_seen": producer.at(3),
        "levels": {"ERROR": 3},
        "sample": {
            "message": "payment pay_27f3a9c2e1b failed after 122ms",
            "request_id": "req-2",
            "trace_id": payment["sample"]["trace_id"],
            "exception_message": "card 4002 declined by issuer",
            "exception_last_line": "ValueError: card 4002 declined by issuer",
        },
    }
    assert len(payment["sample"]["trace_id"]) == 32


def _stdin(monkeypatch: pytest.MonkeyPatch, data: bytes, *, text_only: bool = False) -> None:
    if text_only:  # a StringIO has no .buffer: lines arrive as str
        monkeypatch.setattr(sys, "stdin", io.StringIO(data.decode("utf-8", "replace")))
    else:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))


@pytest.mark.parametrize("argv", [(), ("-",)])
@pytest.mark.parametrize("text_only", [False, True])
def test_reads_stdin(
    day_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: tuple[str, ...],
    text_only: bool,
) -> None:
    _stdin(monkeypatch, day_file.read_bytes(), text_only=text_only)
    status, out, _ = _run(capsys, "--format", "json", *argv)
    report = json.loads(out)
    assert status == 0
    assert (report["lines_read"], report["json_lines"], report["group_count"]) == (23, 11, 2)


def test_reads_gzip_files_and_gzipped_stdin(
    day_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    packed = gzip.compress(day_file.read_bytes())
    (tmp_path / "app.log.gz").write_bytes(packed)
    _, out, _ = _run(capsys, "--format", "json", str(tmp_path / "app.log.gz"))
    assert json.loads(out)["json_lines"] == 11
    (tmp_path / "rotated.1").write_bytes(packed)  # no suffix: recognised by its magic bytes
    _, out, _ = _run(capsys, "--format", "json", str(tmp_path / "rotated.1"))
    assert json.loads(out)["json_lines"] == 11
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(io.BytesIO(packed))))
    _, out, _ = _run(capsys, "--format", "json")
    assert json.loads(out)["json_lines"] == 11


def test_a_truncated_gzip_is_reported_and_exits_2(
    day_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    packed = gzip.compress(day_file.read_bytes())
    broken = tmp_path / "cut.log.gz"
    broken.write_bytes(packed[: len(packed) // 2])
    status, out, err = _run(capsys, "--format", "json", str(day_file), str(broken))
    assert status == 2
    assert f"{broken}: cannot read to the end" in err
    assert json.loads(out)["json_lines"] >= 11  # what could be read is still summarised


def test_several_files_are_summarised_together(day_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = _run(capsys, "--format", "json", str(day_file), str(day_file))
    report = json.loads(out)
    assert (report["lines_read"], [g["count"] for g in report["groups"]]) == (46, [6, 4])


def test_a_missing_file_exits_2_naming_it_before_any_output(
    day_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.log"
    status, out, err = _run(capsys, str(day_file), str(missing))
    assert (status, out) == (2, "")
    assert err == f"obskit logs summarize: {missing}: no such file\n"
    status, out, err = _run(capsys, str(tmp_path))
    assert (status, out) == (2, "")
    assert str(tmp_path) in err


def test_fail_on_errors_exits_1_only_when_there_are_error_groups(
    day_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(capsys, "--fail-on-errors", str(day_file))[0] == 1
    assert _run(capsys, str(day_file))[0] == 0
    quiet = tmp_path / "quiet.log"
    quiet.write_text('{"level":"INFO","logger":"a","message":"fine"}\nnot json\n')
    assert _run(capsys, "--fail-on-errors", str(quiet))[0] == 0


def test_routes_with_5xx_are_listed_in_the_text_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    access = {
        "level": "ERROR",
        "logger": "http.access",
        "message": "GET /a/1 500",
        "method": "GET",
        "status": 500,
    }
    path = tmp_path / "access.log"
    lines = [{**access, "route": "/a/{id}"}] * 3 + [{**access, "route": "/longer/route/{x}", "status": 502}]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    _, out, _ = _run(capsys, str(path))
    assert out.split("5xx responses by route\n")[1].splitlines() == [
        "  GET /a/{id}                   3",
        "  GET /longer/route/{x}         1",
    ]


def test_bad_arguments_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["logs"], ["logs", "summarize", "--level", "LOUD"], ["logs", "summarize", "--top", "-1"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
    assert "must be 0 or more" in capsys.readouterr().err


@pytest.mark.parametrize("module", ["_cli/logs.py", "_cli/_logsummary.py"])
def test_the_command_uses_only_the_standard_library(module: str) -> None:
    tree = ast.parse((SRC / module).read_text())
    imported = {
        name.split(".")[0]
        for node in ast.walk(tree)
        for name in (
            [a.name for a in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom)
            else []
        )
    }
    assert imported - {"obskit", "__future__"} <= set(sys.stdlib_module_names)
    from_obskit = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    } - {"__future__"}
    assert {m for m in from_obskit if m.startswith("obskit")} <= {"obskit._cli._logsummary"}


def test_a_terminal_on_stdin_gets_a_hint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Terminal(""))
    status, _, err = _run(capsys)
    assert status == 0
    assert "reading stdin (end with Ctrl-D)" in err


def test_lines_past_the_group_limit_are_shown_as_ungrouped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_logsummary, "MAX_GROUPS", 1)
    path = tmp_path / "many.log"
    path.write_text(
        "".join(json.dumps({"level": "ERROR", "logger": f"l{i}", "message": "m"}) + "\n" for i in range(3))
    )
    _, out, _ = _run(capsys, str(path))
    assert "  ungrouped             2  (error lines past the group limit)" in out.splitlines()


def test_an_exception_without_a_usable_stack_still_groups() -> None:
    line = {
        "level": "ERROR",
        "logger": "a",
        "message": "m",
        "exception": {"type": "", "message": "", "stack": "\n \n"},
    }
    [group] = summarize([json.dumps(line)]).groups()
    assert (group.count, group.exception_type, group.exception_last_line) == (1, "", "")
