"""Promise 9: one list of sensitive key patterns redacts log fields, span attributes and recorded args."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from opentelemetry import trace

import obskit
import obskit.logging
from logcapture import Lines, attach
from obskit import LoggingContext, testing, trace_operation
from obskit._core.redact import REDACTED, Redactor
from obskit._recording.proxy import ObskitTracerProvider
from obskit.logging import JsonFormatter

LOGGER = "tests.redact"
SECRET = "s3cr3t-VALUE-do-not-leak"

SENSITIVE_KEYS = [
    "password",
    "PASSWORD",
    "db_password",
    "Password-Hash",
    "secret",
    "client_secret",
    "Client-Secret",
    "token",
    "access_token",
    "refreshToken",
    "X-Auth-Token",
    "api_key",
    "API_KEY",
    "api-key",
    "x-api-key",
    "apiKey",
    "authorization",
    "Authorization",
    "proxy-authorization",
    "cookie",
    "Cookie",
    "Set-Cookie",
    "session_cookie",
    "connection_string",
    "Connection-String",
    "connectionString",
    "DB_CONNECTION_STRING",
]

PLAIN_KEYS = [
    "user_id",
    "request_id",
    "job_id",
    "author",
    "path",
    "status",
    "article",
    "model",
    "duration_ms",
]


@pytest.fixture
def json_log() -> Iterator[tuple[logging.Logger, Lines]]:
    yield from attach(JsonFormatter(), LOGGER)


@pytest.fixture
def quiet_configure() -> Iterator[Any]:
    def run(**settings: Any) -> obskit.Settings:
        settings.setdefault("traces_exporter", "none")
        settings.setdefault("metrics_exporter", "none")
        settings.setdefault("logs_exporter", "none")
        return obskit.configure(**settings)

    yield run
    obskit.shutdown(timeout=2)


@pytest.fixture
def structlog_sink() -> Iterator[io.StringIO]:
    sink = io.StringIO()
    structlog.configure(
        processors=obskit.logging.structlog_processors(), logger_factory=structlog.PrintLoggerFactory(sink)
    )
    yield sink
    structlog.reset_defaults()


# -- log fields ----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", SENSITIVE_KEYS)
def test_sensitive_extra_fields_are_redacted(json_log, key):
    logger, lines = json_log
    logger.info("login", extra={key: SECRET, "user_id": "u-1"})
    assert SECRET not in lines.lines[-1]
    record = lines.last()
    assert record[key] == REDACTED
    assert record["user_id"] == "u-1"


@pytest.mark.parametrize("key", SENSITIVE_KEYS)
def test_sensitive_logging_context_fields_are_redacted(json_log, key):
    logger, lines = json_log
    with LoggingContext(user_id="u-1", **{key: SECRET}):
        logger.info("in context")
    assert SECRET not in lines.lines[-1]
    record = lines.last()
    assert record[key] == REDACTED
    assert record["user_id"] == "u-1"


@pytest.mark.parametrize("key", SENSITIVE_KEYS)
def test_sensitive_keys_in_nested_dicts_are_redacted(json_log, key):
    logger, lines = json_log
    logger.info("request", extra={"request": {"method": "GET", "headers": {key: SECRET, "accept": "json"}}})
    assert SECRET not in lines.lines[-1]
    headers = lines.last()["request"]["headers"]
    assert headers == {key: REDACTED, "accept": "json"}


def test_sensitive_keys_in_dicts_inside_lists_are_redacted(json_log):
    logger, lines = json_log
    users = [{"name": "a", "password": SECRET}, {"name": "b", "api_key": SECRET}]
    logger.info("batch", extra={"users": users, "pairs": ({"token": SECRET},)})
    assert SECRET not in lines.lines[-1]
    record = lines.last()
    assert record["users"] == [{"name": "a", "password": REDACTED}, {"name": "b", "api_key": REDACTED}]
    assert record["pairs"] == [{"token": REDACTED}]
    assert users[0]["password"] == SECRET, "the caller's data is not modified"


def test_sensitive_key_in_a_context_field_holding_a_dict_is_redacted(json_log):
    logger, lines = json_log
    with LoggingContext(client={"id": "c-1", "client_secret": SECRET}):
        logger.info("ctx dict")
    assert SECRET not in lines.lines[-1]
    assert lines.last()["client"] == {"id": "c-1", "client_secret": REDACTED}


def test_a_sensitive_key_redacts_its_whole_value_even_a_dict(json_log):
    logger, lines = json_log
    logger.info(
        "creds", extra={"credentials": {"user": "me", "pass": SECRET}, "authorization": ["Bearer", SECRET]}
    )
    assert SECRET not in lines.lines[-1]
    record = lines.last()
    assert record["credentials"] == REDACTED
    assert record["authorization"] == REDACTED


def test_redaction_does_not_modify_the_callers_dict(json_log):
    logger, _lines = json_log
    payload = {"headers": {"Authorization": SECRET}}
    logger.info("x", extra={"payload": payload})
    assert payload == {"headers": {"Authorization": SECRET}}
    with LoggingContext(token=SECRET):
        assert LoggingContext.current()["token"] == SECRET


@pytest.mark.parametrize("key", PLAIN_KEYS)
def test_non_sensitive_keys_are_untouched(json_log, key):
    logger, lines = json_log
    with LoggingContext(**{f"ctx_{key}": "ctx-value"}):
        logger.info("plain", extra={key: "visible-value", "nested": {key: 5}})
    record = lines.last()
    assert record[key] == "visible-value"
    assert record[f"ctx_{key}"] == "ctx-value"
    assert record["nested"] == {key: 5}


def test_message_text_is_not_redacted_only_fields_are(json_log):
    logger, lines = json_log
    logger.info("the word password in a message is fine")
    assert lines.last()["message"] == "the word password in a message is fine"


def test_structlog_get_logger_fields_are_redacted(json_log):
    _, lines = json_log
    obskit.get_logger(LOGGER).info("structlog", api_key=SECRET, user_id="u", nested={"Cookie": SECRET})
    assert SECRET not in lines.lines[-1]
    record = lines.last()
    assert record["api_key"] == REDACTED
    assert record["nested"] == {"Cookie": REDACTED}
    assert record["user_id"] == "u"


def test_structlog_processor_fields_are_redacted(structlog_sink):
    with LoggingContext(session_token=SECRET):
        structlog.get_logger().info("direct", password=SECRET, job_id=3)
    line = structlog_sink.getvalue()
    assert SECRET not in line
    record = json.loads(line)
    assert record["password"] == REDACTED
    assert record["session_token"] == REDACTED
    assert record["job_id"] == 3


# -- configurable patterns -----------------------------------------------------------------------


def test_extra_patterns_are_not_redacted_by_default(json_log):
    logger, lines = json_log
    logger.info("x", extra={"ssn": "123-45-6789"})
    assert lines.last()["ssn"] == "123-45-6789"


def test_configure_redact_keys_adds_patterns(quiet_configure, json_log):
    quiet_configure(redact_keys=["ssn", "Tax-ID"])
    logger, lines = json_log
    logger.info(
        "x",
        extra={
            "ssn": SECRET,
            "customer_SSN": SECRET,
            "tax_id": SECRET,
            "TAX-ID": SECRET,
            "password": SECRET,
            "label": "visible",
        },
    )
    assert SECRET not in lines.lines[-1]
    record = lines.last()
    assert record["ssn"] == record["customer_SSN"] == record["tax_id"] == record["TAX-ID"] == REDACTED
    assert record["password"] == REDACTED, "the built-in patterns stay"
    assert record["label"] == "visible"


def test_redact_keys_from_environment_variable(quiet_configure, monkeypatch, json_log):
    monkeypatch.setenv("OBSKIT_REDACT_KEYS", "ssn, iban ,")
    quiet_configure()
    logger, lines = json_log
    with LoggingContext(iban=SECRET):
        logger.info("x", extra={"ssn": SECRET, "plain": "ok"})
    assert SECRET not in lines.lines[-1]
    record = lines.last()
    assert record["ssn"] == record["iban"] == REDACTED
    assert record["plain"] == "ok"


def test_keyword_redact_keys_wins_over_environment(quiet_configure, monkeypatch, json_log):
    monkeypatch.setenv("OBSKIT_REDACT_KEYS", "iban")
    quiet_configure(redact_keys=["ssn"])
    logger, lines = json_log
    logger.info("x", extra={"ssn": SECRET, "iban": "DE00"})
    record = lines.last()
    assert record["ssn"] == REDACTED
    assert record["iban"] == "DE00"


def test_extra_patterns_stop_applying_after_shutdown(quiet_configure, json_log):
    quiet_configure(redact_keys=["ssn"])
    obskit.shutdown()
    logger, lines = json_log
    logger.info("x", extra={"ssn": "1", "password": SECRET})
    record = lines.last()
    assert record["ssn"] == "1"
    assert record["password"] == REDACTED


# -- span attributes: the same list --------------------------------------------------------------


def test_trace_operation_attributes_are_redacted(quiet_configure):
    quiet_configure(redact_keys=["ssn"])
    with testing.capture() as cap:
        with trace_operation("op", attributes={"api_key": SECRET, "ssn": SECRET, "stage": "extract"}):
            pass
        span = cap.assert_span("op")
    assert span.attributes["api_key"] == REDACTED
    assert span.attributes["ssn"] == REDACTED
    assert span.attributes["stage"] == "extract"


def test_decorator_attributes_are_redacted():
    @trace_operation("decorated", attributes={"Authorization": SECRET, "stage": "load"})
    def work() -> int:
        return 1

    with testing.capture() as cap:
        assert work() == 1
    span = cap.assert_span("decorated")
    assert span.attributes["Authorization"] == REDACTED
    assert span.attributes["stage"] == "load"


@pytest.mark.parametrize("key", SENSITIVE_KEYS)
def test_user_set_span_attributes_are_redacted_before_export(key):
    with testing.capture() as cap, trace_operation("user attrs") as span:
        span.set_attribute(key, SECRET)
        span.set_attribute("article", "a-1")
    (exported,) = cap.spans("user attrs")
    assert exported.attributes[key] == REDACTED
    assert exported.attributes["article"] == "a-1"
    assert SECRET not in repr(dict(exported.attributes))


def test_spans_from_the_opentelemetry_api_are_redacted_too(quiet_configure):
    quiet_configure(redact_keys=["ssn"], traces_exporter="console")
    if not isinstance(trace.get_tracer_provider(), ObskitTracerProvider):
        pytest.skip("another global TracerProvider was installed first in this process")
    tracer = trace.get_tracer("user.module")
    with testing.capture() as cap, tracer.start_as_current_span("api span") as span:
        span.set_attribute("password", SECRET)
        span.set_attribute("ssn", SECRET)
        span.set_attribute("route", "/x")
    (exported,) = cap.spans("api span")
    assert exported.attributes["password"] == REDACTED
    assert exported.attributes["ssn"] == REDACTED
    assert exported.attributes["route"] == "/x"


def test_one_list_redacts_logs_and_spans_alike(quiet_configure, json_log):
    quiet_configure(redact_keys=["ssn"])
    logger, lines = json_log
    with testing.capture() as cap, trace_operation("both", attributes={"ssn": SECRET}) as span:
        span.set_attribute("customer_ssn", SECRET)
        logger.info("both", extra={"ssn": SECRET, "customer_ssn": SECRET})
    (exported,) = cap.spans("both")
    assert exported.attributes["ssn"] == exported.attributes["customer_ssn"] == REDACTED
    record = lines.last()
    assert record["ssn"] == record["customer_ssn"] == REDACTED


def test_env_redact_keys_apply_to_span_attributes(quiet_configure, monkeypatch):
    monkeypatch.setenv("OBSKIT_REDACT_KEYS", "iban")
    quiet_configure()
    with testing.capture() as cap, trace_operation("env", attributes={"iban": SECRET, "amount": 3}) as span:
        span.set_attribute("payer_iban", SECRET)
    (exported,) = cap.spans("env")
    assert exported.attributes["iban"] == exported.attributes["payer_iban"] == REDACTED
    assert exported.attributes["amount"] == 3


def test_recorded_arguments_are_redacted():
    @trace_operation("login", record_args=True)
    def login(username: str, password: str, api_key: str = "default") -> str:
        return username

    with testing.capture() as cap:
        assert login("alice", SECRET, api_key=SECRET) == "alice"
    span = cap.assert_span("login")
    assert span.attributes["code.args.username"] == "alice"
    assert span.attributes["code.args.password"] == REDACTED
    assert span.attributes["code.args.api_key"] == REDACTED
    assert SECRET not in repr(dict(span.attributes))


def test_non_sensitive_span_attributes_are_untouched():
    attributes = {key: f"v-{key}" for key in PLAIN_KEYS}
    with testing.capture() as cap, trace_operation("plain", attributes=attributes) as span:
        span.set_attribute("count", 3)
    (exported,) = cap.spans("plain")
    for key in PLAIN_KEYS:
        assert exported.attributes[key] == f"v-{key}"
    assert exported.attributes["count"] == 3


# -- the matcher itself --------------------------------------------------------------------------


@pytest.mark.parametrize("key", SENSITIVE_KEYS)
def test_redactor_matches_case_insensitively_with_dash_or_underscore(key):
    assert Redactor().is_sensitive(key)
    assert Redactor().is_sensitive(key)  # cached answer is the same


@pytest.mark.parametrize("key", PLAIN_KEYS)
def test_redactor_leaves_plain_keys(key):
    redactor = Redactor()
    assert not redactor.is_sensitive(key)
    assert redactor.mapping({key: 1}) == {key: 1}


def test_redactor_extra_patterns_and_mapping_copy():
    redactor = Redactor(["ssn"])
    original = {"ssn": "1", "inner": {"my-ssn": "2", "ok": 3}, "ok": 4}
    assert redactor.mapping(original) == {"ssn": REDACTED, "inner": {"my-ssn": REDACTED, "ok": 3}, "ok": 4}
    assert original["ssn"] == "1"


@pytest.mark.parametrize("key", ["prompt_tokens", "completion_tokens", "total_tokens", "tokens", "secretary"])
def test_counts_and_lookalike_words_are_not_redacted(key: str) -> None:
    from obskit._core.redact import Redactor

    assert not Redactor().is_sensitive(key)


@pytest.mark.parametrize(
    "key", ["X-Auth-Token", "db_passwords", "session_cookie_v2", "client_secrets", "token_count"]
)
def test_pattern_followed_by_separator_or_plural_is_redacted(key: str) -> None:
    from obskit._core.redact import Redactor

    assert Redactor().is_sensitive(key)


def test_sensitive_span_event_attributes_are_redacted() -> None:
    with testing.capture() as cap, trace_operation("login") as span:
        span.add_event("attempt", {"password": "hunter2", "user": "ann"})
    (event,) = cap.spans("login")[0].events
    assert event.attributes is not None
    assert event.attributes["password"] == REDACTED
    assert event.attributes["user"] == "ann"


def test_credential_patterns_are_compiled_when_text_first_needs_them() -> None:
    # A redactor is built at import and by every configure(); most never meet "key=value" text.
    redactor = Redactor()
    compiled = Redactor.__dict__["_free"]  # the slot itself: reading it does not compile
    with pytest.raises(AttributeError):
        compiled.__get__(redactor)
    assert redactor.scrub("plain words, no key") == "plain words, no key"
    with pytest.raises(AttributeError):
        compiled.__get__(redactor)
    assert redactor.scrub("login password=hunter2") == f"login password={REDACTED}"
    assert compiled.__get__(redactor) is not None
    assert Redactor(text=False).scrub("password=hunter2") == "password=hunter2"
    with pytest.raises(AttributeError):
        redactor.no_such_attribute  # noqa: B018
