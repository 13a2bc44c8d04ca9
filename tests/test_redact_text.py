"""Credentials in free text (value patterns) and values no exporter can take: the shared core."""

from __future__ import annotations

import json
import time

import pytest

from obskit import ConfigError
from obskit._core.redact import REDACTED, Redactor, redactor_for, safe_json, safe_text, safe_value
from obskit._core.settings import resolve_settings

SCRUBBED = [
    (
        "GET http://user:pw@example.com/x?api_key=abc123&token=def&page=2",
        f"GET http://{REDACTED}@example.com/x?api_key={REDACTED}&token={REDACTED}&page=2",
    ),
    (
        'HTTP Request: GET http://u:p@host:8080/p?api_key=K1 "HTTP/1.1 200 OK"',
        f'HTTP Request: GET http://{REDACTED}@host:8080/p?api_key={REDACTED} "HTTP/1.1 200 OK"',
    ),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abc.def", f"Authorization: {REDACTED}"),
    ("headers {'Authorization': 'Basic dXNlcjpwYXNz'}", f"headers {{'Authorization': '{REDACTED}'}}"),
    ("sent with bearer abcdefghij", f"sent with bearer {REDACTED}"),
    ("login failed password=hunter2 for bob", f"login failed password={REDACTED} for bob"),
    ('{"password": "hunter2", "user": "bob"}', f'{{"password": "{REDACTED}", "user": "bob"}}'),
    (
        "AccountKey=abc/d+e==;SharedAccessSignature=sv=2020&sig=xyz",
        f"AccountKey={REDACTED};SharedAccessSignature={REDACTED}&sig={REDACTED}",
    ),
    ("connection_string: Server=db;Password=p4ss;", f"connection_string: {REDACTED};Password={REDACTED};"),
    ("postgres://admin:s3cr3t@db:5432/app", f"postgres://{REDACTED}@db:5432/app"),
    ("X-Api-Key: abcdef", f"X-Api-Key: {REDACTED}"),
    ("client_secret=abc&grant_type=x", f"client_secret={REDACTED}&grant_type=x"),
    ("set-cookie: a=b", f"set-cookie: {REDACTED}"),
]
KEPT = [
    "job done in 3 ms",
    "prompt_tokens=35 took: 3ms",
    "token count: 5",
    "basic auth is off",
    "secretary=bob",
    "see https://example.com/docs?page=2",
    "cache key: user:42",
    "",
]


@pytest.mark.parametrize(("text", "expected"), SCRUBBED)
def test_credentials_in_free_text_are_hidden_keys_kept(text: str, expected: str) -> None:
    assert Redactor().scrub(text) == expected


@pytest.mark.parametrize(("text", "expected"), SCRUBBED)
def test_scrubbing_twice_changes_nothing(text: str, expected: str) -> None:
    assert Redactor().scrub(expected) == expected


def test_a_credential_after_a_plain_key_value_is_still_found() -> None:
    text = "upstream host:8080/p?token=abc&page=2 said: no"
    assert Redactor().scrub(text) == f"upstream host:8080/p?token={REDACTED}&page=2 said: no"


def test_long_text_is_scrubbed_in_linear_time() -> None:
    # The key patterns are judged per key, not tried at every character: a long run of
    # key-like characters without a separator used to cost quadratic time.
    text = "x" * 200_000 + " password=p"
    assert Redactor().scrub(text).endswith(f"password={REDACTED}")


def test_a_long_chain_of_key_value_pairs_is_scrubbed_without_recursion() -> None:
    # "0:1:2:..." is thousands of key:value pairs each inside the previous one's value.
    text = ":".join(str(i) for i in range(5000)) + " token=abc"
    assert Redactor().scrub(text) == text[: -len("abc")] + REDACTED


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://u:p@h:8/p?api_key=k&page=2#top", f"https://{REDACTED}@h:8/p?api_key={REDACTED}&page=2#top"),
        (
            "http://h/p?X-Amz-Signature=s&sig=t&pass=u",
            f"http://h/p?X-Amz-Signature=s&sig={REDACTED}&pass={REDACTED}",
        ),
        ("http://h/p?api%5Fkey=k", f"http://h/p?api%5Fkey={REDACTED}"),
        ("http://h/a@b/c?q=1", "http://h/a@b/c?q=1"),
        ("/p?token=", "/p?token="),
        ("https://example.com/no-query", "https://example.com/no-query"),
        ("/p?flag", "/p?flag"),
    ],
)
def test_urls_lose_userinfo_and_sensitive_query_values_even_with_text_off(url: str, expected: str) -> None:
    redactor = Redactor(text=False)
    assert redactor.url(url) == expected
    assert redactor.url(expected) == expected


def test_a_url_with_nothing_to_hide_is_the_same_object() -> None:
    url = "https://example.com/items/42?page=2&size=10"
    assert Redactor().url(url) is url


@pytest.mark.parametrize("text", KEPT)
def test_text_without_credentials_is_the_same_object(text: str) -> None:
    assert Redactor().scrub(text) is text


def test_extra_key_patterns_count_in_text_too() -> None:
    assert Redactor(["session_id"]).scrub("session-id=abc ok") == f"session-id={REDACTED} ok"


def test_user_patterns_replace_their_whole_match_even_with_text_off() -> None:
    redactor = Redactor(text=False, value_patterns=[r"\b\d{4}-\d{4}-\d{4}-\d{4}\b"])
    assert redactor.scrub("card 1234-5678-1234-5678 password=x") == f"card {REDACTED} password=x"


def test_text_off_and_no_patterns_costs_nothing() -> None:
    text = "password=x"
    assert Redactor(text=False).scrub(text) is text


def test_settings_build_the_redactor() -> None:
    settings = resolve_settings({"redact_text": False, "redact_patterns": ["ab+c"], "redact_keys": "pin"})
    redactor = redactor_for(settings)
    assert redactor.scrub("abbbc password=1 pin=2") == f"{REDACTED} password=1 pin=2"
    assert redactor_for(resolve_settings({"redact_keys": "pin"})).scrub("pin: 1234") == f"pin: {REDACTED}"


def test_redact_patterns_env_takes_a_json_list_for_commas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OBSKIT_REDACT_PATTERNS", '["x{1,3}", "y"]')
    assert resolve_settings({}).redact_patterns == ("x{1,3}", "y")


@pytest.mark.parametrize("bad", ["(", '["("]', "[not json"])
def test_a_bad_pattern_names_the_setting(bad: str) -> None:
    with pytest.raises(ConfigError, match="redact_patterns"):
        resolve_settings({"redact_patterns": bad})


def test_safe_text_escapes_lone_surrogates_only() -> None:
    assert safe_text("bad \ud800 é") == "bad \\ud800 é"
    text = "fine é ☃"
    assert safe_text(text) is text
    safe_text("\udc80\udcff").encode("utf-8")


def test_safe_json_escapes_lone_surrogates_as_text_the_json_keeps() -> None:
    text = json.dumps({"k\udc80": "bad \ud800 é"}, ensure_ascii=False)
    safe = safe_json(text)
    safe.encode("utf-8")
    assert json.loads(safe) == {"k\\udc80": safe_text("bad \ud800 é")}
    fine = '{"a":"é ☃"}'
    assert safe_json(fine) is fine


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (2**63 - 1, 2**63 - 1),
        (-(2**63), -(2**63)),
        (2**63, str(2**63)),
        (10**5000, "[unrenderable int]"),
        (_Unprintable(), "[unrenderable _Unprintable]"),
        ("a\ud800", "a\\ud800"),
        (1.5, 1.5),
        (True, True),
        (None, None),
    ],
    ids=[
        "int64_max",
        "int64_min",
        "past_int64",
        "too_long_to_print",
        "str_raises",
        "surrogate",
        "float",
        "bool",
        "none",
    ],
)
def test_safe_value_keeps_what_exporters_take_and_marks_the_rest(value: object, expected: object) -> None:
    assert safe_value(value) == expected


@pytest.mark.parametrize(
    "text",
    [
        "password=[REDACTED]",
        '{"password": "[REDACTED]"}',
        "token: [REDACTED] ok",
        "Authorization: [REDACTED]",
    ],
)
def test_scrubbing_scrubbed_text_changes_nothing(text: str) -> None:
    assert Redactor().scrub(text) is text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mysig=abc sig=def", f"mysig=abc sig={REDACTED}"),
        ("X-Api-Key: abc", f"X-Api-Key: {REDACTED}"),
        ("db_password=p1 tokenizer=gpt", f"db_password={REDACTED} tokenizer=gpt"),
    ],
)
def test_keys_are_judged_whole_wherever_the_match_starts(text: str, expected: str) -> None:
    assert Redactor().scrub(text) == expected


def test_scrubbing_long_text_takes_linear_time() -> None:
    # The key pattern once began with a lazy run of word characters: quadratic in a long word
    # (4 KB took half a second, 40 KB would take a minute).
    text = "x" * 20_000 + " token=abc " + "word " * 4_000
    started = time.perf_counter()
    scrubbed = Redactor().scrub(text)
    assert time.perf_counter() - started < 1.0
    assert f"token={REDACTED}" in scrubbed


def test_walk_redacts_nested_keys_and_maps_every_leaf() -> None:
    redactor = Redactor()
    value = {"headers": {"Authorization": "Bearer abcdefgh"}, "notes": ["password=x", 3]}
    walked = redactor.walk("outer", value, redactor.text_value)
    assert walked == {"headers": {"Authorization": REDACTED}, "notes": [f"password={REDACTED}", 3]}
    assert redactor.walk("client_secret", {"a": 1}, str) == REDACTED


def test_text_whose_lower_case_is_longer_is_scrubbed_in_place() -> None:
    # "İ".lower() is two characters: positions found in the lower-cased text must still fit.
    assert Redactor().scrub("İİ password=x İ token=y") == f"İİ password={REDACTED} İ token={REDACTED}"


@pytest.mark.parametrize("text", ["req-1f2e", "10.0.0.9", "Mozilla/5.0 (X11; Linux x86_64)", "a basic test"])
def test_text_that_cannot_hold_a_credential_is_answered_without_a_search(text: str) -> None:
    assert Redactor().scrub(text) is text


def test_a_word_alone_is_left_but_a_scheme_and_its_credential_are_not() -> None:
    assert Redactor().scrub("bearer") == "bearer"
    assert Redactor().scrub("Bearer\tabcdefgh") == f"Bearer {REDACTED}"
