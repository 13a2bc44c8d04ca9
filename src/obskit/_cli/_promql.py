"""What ``obskit rules`` and ``obskit dashboard`` share: option parsing, family names, PromQL, output.

The option parsers are argparse ``type=`` callables: a bad value exits with status 2 and a message
naming the option and the values allowed. The family names come from the specs the recording code
declares (``obskit._recording``: ``families``, ``health``, ``store``), imported only when a command runs, so a
renamed family changes the generated PromQL and fails the generators' tests instead of drifting.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = [
    "Families",
    "add_common_options",
    "add_slo_option",
    "by",
    "families",
    "label_name",
    "number",
    "positive_seconds",
    "ratio",
    "resolve_namespace",
    "series",
    "share",
    "write_output",
]

_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_DURATION = re.compile(r"(?:\d+y)?(?:\d+w)?(?:\d+d)?(?:\d+h)?(?:\d+m)?(?:\d+s)?(?:\d+ms)?")
_MATCHER = re.compile(
    r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\\x00-\x1f]|\\[^\x00-\x1f])*")\s*'
)
#: The label holding a ``track_job`` name: ``job_name``, which a scrape keeps as it is (``job``
#: is the scrape job's, see docs/design.md "Decisions").
DEFAULT_JOB_LABEL = "job_name"


# -- option parsers -------------------------------------------------------------------------------


def _invalid(value: str, allowed: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(f"invalid value {value!r}; allowed: {allowed}")


def _float(value: str, allowed: str) -> float:
    try:
        parsed = float(value)
    except ValueError:
        raise _invalid(value, allowed) from None
    if not math.isfinite(parsed):
        raise _invalid(value, allowed)
    return parsed


def ratio(value: str) -> float:
    """A ratio above 0 and at most 1 (``0.05`` is 5%)."""
    allowed = "a ratio above 0 and at most 1, e.g. 0.05 for 5%"
    parsed = _float(value, allowed)
    if not 0 < parsed <= 1:
        raise _invalid(value, allowed)
    return parsed


def positive_seconds(value: str) -> float:
    """A positive number of seconds."""
    allowed = "a positive number of seconds, e.g. 0.5"
    parsed = _float(value, allowed)
    if parsed <= 0:
        raise _invalid(value, allowed)
    return parsed


def _duration_seconds(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)(ms|[smhdwy])", text))


def duration(*, zero: bool = False) -> Callable[[str], str]:
    """A Prometheus duration (``30s``, ``5m``, ``1h30m``); ``zero`` also allows ``0s``."""
    allowed = "a Prometheus duration such as 30s, 5m or 1h30m" + (" (0s for none)" if zero else "")

    def parse(value: str) -> str:
        text = value.strip()
        if not text or not _DURATION.fullmatch(text) or (not zero and _duration_seconds(text) == 0):
            raise _invalid(value, allowed)
        return text

    return parse


def label_name(value: str) -> str:
    """A Prometheus label name."""
    if not _LABEL.fullmatch(value) or value.startswith("__"):
        raise _invalid(value, "a Prometheus label name: [a-zA-Z_][a-zA-Z0-9_]*, not starting with __")
    return value


def label_value(value: str) -> str:
    """A non-empty label value on one line."""
    if not value.strip() or not value.isprintable():
        raise _invalid(value, "a non-empty label value without control characters")
    return value


def label_pair(value: str) -> tuple[str, str]:
    """``NAME=VALUE``: a label added to every alert."""
    name, sep, text = value.partition("=")
    allowed = "NAME=VALUE with NAME a label name other than alertname or severity, e.g. team=payments"
    if not sep or not _LABEL.fullmatch(name) or name.startswith("__") or name in {"alertname", "severity"}:
        raise _invalid(value, allowed)
    if not text.strip() or not text.isprintable():
        raise _invalid(value, allowed)
    return name, text


def matchers(value: str) -> tuple[str, ...]:
    """Label matchers such as ``job="api",env=~"prod|staging"``; surrounding braces are optional."""
    text = value.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    found: list[str] = []
    position = 0
    while text[position:].strip():
        match = _MATCHER.match(text, position)
        if match is None or (match.end() < len(text) and text[match.end()] != ","):
            raise _invalid(value, 'comma-separated label matchers, e.g. job="api" or job=~"api|worker"')
        found.append(f"{match.group(1)}{match.group(2)}{match.group(3)}")
        position = match.end() + 1
    return tuple(found)


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """``--namespace``, ``--job-label`` and ``--output``, the same for both generators."""
    parser.add_argument(
        "--namespace",
        metavar="NS",
        help="metric namespace of the <NS>_jobs_total family (default: $OBSKIT_METRIC_NAMESPACE, "
        "else obskit)",
    )
    parser.add_argument(
        "--job-label",
        type=label_name,
        default=DEFAULT_JOB_LABEL,
        metavar="LABEL",
        help="the label holding obskit's job name in Prometheus (default: job_name; set it only if "
        "your relabelling renames job_name)",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")


#: Where ``--slo`` without a SOURCE reads the objectives.
DEFAULT_SLO_SOURCE = "obskit.toml"


def add_slo_option(parser: argparse.ArgumentParser, dest: str, purpose: str, default_note: str) -> None:
    """``--slo [SOURCE]``, repeatable, the same for ``rules``, ``dashboard`` and ``slo report``.

    ``purpose`` says what the command does with the objectives; ``default_note`` ends the help
    (what happens without the option, where to read more).
    """
    parser.add_argument(
        "--slo",
        dest=dest,
        action="append",
        nargs="?",
        const=DEFAULT_SLO_SOURCE,
        default=[],
        metavar="SOURCE",
        help=f"{purpose}: a .toml file ([[slo]] tables), a .yaml file (an slo: list), or a Python "
        f"module or .py file calling obskit.slo(); without SOURCE, obskit.toml (repeatable; {default_note})",
    )


def resolve_namespace(option: str | None) -> str:
    """The metric namespace: ``--namespace``, else ``$OBSKIT_METRIC_NAMESPACE``, else ``obskit``.

    Validated as ``configure()`` validates it.

    Raises:
        ConfigError: naming ``--namespace`` or the environment variable, and the values allowed.
    """
    from obskit import environment_variables as env
    from obskit._core.errors import ConfigError
    from obskit._core.settings import resolve_settings

    try:
        if option is not None:
            return resolve_settings({"metric_namespace": option}, environ={}).metric_namespace
        variable = env.OBSKIT_METRIC_NAMESPACE
        environ = {variable: os.environ[variable]} if variable in os.environ else {}
        return resolve_settings({}, environ=environ).metric_namespace
    except ConfigError as error:
        if option is None:
            raise
        raise ConfigError("--namespace", option, error.allowed) from None


# -- obskit's families ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Families:
    """Exposed names of the families the rules and the dashboard query (histograms without suffix)."""

    jobs_total: str
    job_duration: str
    jobs_in_progress: str
    http_requests_total: str
    http_duration: str
    http_in_progress: str
    health_status: str
    health_duration: str
    dropped_total: str
    overflow_total: str
    external_duration: str


def families(namespace: str) -> Families:
    """The names obskit exposes under ``namespace``, read from the specs it records with."""
    from obskit._recording.families import call_specs, job_specs
    from obskit._recording.health import health_specs
    from obskit._recording.store import DROPPED_METRIC, OVERFLOW_METRIC

    jobs, job_duration, in_progress, _ = job_specs(namespace)
    calls = call_specs(namespace)
    health_status, health_duration = health_specs(namespace)
    return Families(
        jobs_total=f"{jobs.name}_total",
        job_duration=job_duration.name,
        jobs_in_progress=in_progress.name,
        http_requests_total=f"{calls['http_requests'].name}_total",
        http_duration=calls["http_duration"].name,
        http_in_progress=calls["http_in_progress"].name,
        health_status=health_status.name,
        health_duration=health_duration.name,
        dropped_total=f"{DROPPED_METRIC}_total",
        overflow_total=f"{OVERFLOW_METRIC}_total",
        external_duration=calls["external_duration"].name,
    )


# -- PromQL ---------------------------------------------------------------------------------------


def series(metric: str, *matchers: str) -> str:
    """A series selector: ``metric{m1,m2}``, or the bare name when no matcher is given."""
    given = [m for m in matchers if m]
    return f"{metric}{{{','.join(given)}}}" if given else metric


def by(labels: Iterable[str]) -> str:
    """``by (a, b)`` with each label once, in the order given."""
    return f"by ({', '.join(dict.fromkeys(labels))})"


def share(part: str, whole: str) -> str:
    """``part / whole``, 0 rather than no series where ``part`` has none (a route without a 5xx)."""
    return f"(\n  {part}\n    or\n  {whole} * 0\n)\n  /\n{whole}"


def number(value: float) -> str:
    """A PromQL number literal without a needless ``.0``."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


# -- output ---------------------------------------------------------------------------------------


def write_output(command: str, text: str, path: str | None) -> int:
    """Write ``text`` to ``path`` (standard output when None or ``-``); the exit status."""
    if path is None or path == "-":
        sys.stdout.write(text)
        return 0
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as error:
        print(f"obskit {command}: cannot write --output {path!r}: {error.strerror or error}", file=sys.stderr)
        return 2
    return 0


def generate(command: str, args: argparse.Namespace, render: Callable[[argparse.Namespace, str], str]) -> int:
    """Resolve the namespace, render, write to ``--output``: the run of ``rules`` and ``dashboard``.

    Returns the exit status: 2 (with the message on stderr) on a bad namespace or output path.
    """
    from obskit._core.errors import ConfigError

    try:
        namespace = resolve_namespace(args.namespace)
    except ConfigError as error:
        print(f"obskit {command}: {error}", file=sys.stderr)
        return 2
    return write_output(command, render(args, namespace), args.output)
