"""``obskit rules``: Prometheus recording and alerting rules for the metrics obskit emits.

The output is a rules file (``rule_files:`` in prometheus.yml) that ``promtool check rules``
accepts. It is YAML written here, not by a YAML library: every value is a string, quoted unless
it is a plain word or a duration, and every expression is a literal block.

Why not PyYAML: it would become a dependency of every service that installs obskit, for one CLI
command that writes strings only. And ``yaml.safe_dump`` does not write what is wanted here:
without a custom representer a multi-line expression comes out as a double-quoted scalar with
newline escapes, unreadable in review, and key order needs ``sort_keys=False``. The quoting rules
below (plain only for words and durations, never YAML 1.1's booleans and null, single quotes for
printable text, JSON's double quotes for the rest) are checked by reading the output back with
``yaml.safe_load`` (tests/test_cli_rules.py, awkward labels and every awkward scalar) and by
``promtool check rules`` and a real Prometheus (tests/integration/test_rules_dashboard.py).

Alerts evaluate raw series rather than the recorded ones, so each works on its own (deleting the
recording group breaks no alert) and fires one evaluation sooner; both come from the same builders.
The SLO groups of ``--slo`` (``obskit._cli._slo``) are the exception: each objective's alerts
compare burn rates over eight windows, recorded once in the objective's own group, ahead of them.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from obskit._cli import _promql as q

__all__ = ["ALERTS", "document", "dump_yaml", "register", "render", "run"]

Rule = dict[str, Any]

#: Every alert ``obskit rules`` writes, in the order written (``--severity`` and ``--label`` name them).
ALERTS = (
    "HighErrorRate",
    "HighRequestLatency",
    "JobsStuck",
    "HighJobFailureRate",
    "ServiceDown",
    "HealthCheckFailing",
    "TelemetryDropped",
    "MetricSeriesOverflow",
    # Written only with --slo, once per objective (obskit._cli._slo.ALERTS).
    "SLOBurnRatePage",
    "SLOBurnRateTicket",
)
#: The levels ``--severity`` takes; each is written as the value of its ``--LEVEL-severity`` option.
LEVELS = ("critical", "warning", "info")


def _check_alert(alert: str, value: str, allowed: str) -> None:
    if alert not in ALERTS:
        raise argparse.ArgumentTypeError(
            f"invalid value {value!r}; allowed: {allowed}, with ALERT one of {', '.join(ALERTS)}"
        )


def severity_override(value: str) -> tuple[str, str]:
    """``ALERT=LEVEL``: the severity level of one alert (critical, warning or info)."""
    allowed = f"ALERT=LEVEL with LEVEL one of {', '.join(LEVELS)}, e.g. HighRequestLatency=info"
    alert, sep, level = value.partition("=")
    _check_alert(alert, value, allowed)
    if not sep or level not in LEVELS:
        raise argparse.ArgumentTypeError(f"invalid value {value!r}; allowed: {allowed}")
    return alert, level


def alert_label(value: str) -> tuple[str, str, str]:
    """``NAME=VALUE`` (every alert) or ``ALERT:NAME=VALUE`` (that alert): ("" or ALERT, NAME, VALUE)."""
    alert, sep, pair = value.partition(":")
    if not sep or "=" in alert:  # no alert named: a label for every alert (its value may hold ':')
        return ("", *q.label_pair(value))
    allowed = (
        "ALERT:NAME=VALUE with NAME a label name other than alertname or severity,"
        " e.g. ServiceDown:service=api"
    )
    _check_alert(alert, value, allowed)
    try:
        name, text = q.label_pair(pair)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"invalid value {value!r}; allowed: {allowed}") from None
    return alert, name, text


#: ``obskit rules`` options after the common ones: (flags, argparse keywords).
_OPTIONS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("--selector", {"type": q.matchers, "default": (), "metavar": "MATCHERS",
     "help": "label matchers added to every series selector, e.g. 'job=\"api\"' (default: none)"}),
    ("--window", {"type": q.duration(), "default": "5m", "metavar": "DURATION",
     "help": "rate window of the HTTP and telemetry rules (default: 5m)"}),
    ("--job-window", {"type": q.duration(), "default": "1h", "metavar": "DURATION",
     "help": "window of the job failure ratio and job p95 (default: 1h)"}),
    ("--error-rate", {"type": q.ratio, "default": 0.05, "metavar": "RATIO",
     "help": "5xx share of a route's requests that alerts (default: 0.05)"}),
    ("--latency-p95", {"type": q.positive_seconds, "default": 1.0, "metavar": "SECONDS",
     "help": "p95 request duration of a route that alerts (default: 1)"}),
    ("--job-failure-rate", {"type": q.ratio, "default": 0.1, "metavar": "RATIO",
     "help": "share of a job's runs failing over --job-window that alerts (default: 0.1)"}),
    ("--stuck-for", {"type": q.duration(), "default": "15m", "metavar": "DURATION",
     "help": "how long a job may have runs in progress and none finishing before JobsStuck fires "
     "(default: 15m)"}),
    ("--for", {"dest": "pending", "type": q.duration(zero=True), "default": "5m", "metavar": "DURATION",
     "help": "how long a condition must hold before the other alerts fire (default: 5m)"}),
    ("--down-for", {"type": q.duration(zero=True), "default": "1m", "metavar": "DURATION",
     "help": "how long a target must fail its scrapes before ServiceDown fires (default: 1m)"}),
    ("--critical-severity", {"type": q.label_value, "default": "critical", "metavar": "VALUE",
     "help": "severity label of the paging alerts (default: critical)"}),
    ("--warning-severity", {"type": q.label_value, "default": "warning", "metavar": "VALUE",
     "help": "severity label of the other alerts (default: warning)"}),
    ("--info-severity", {"type": q.label_value, "default": "info", "metavar": "VALUE",
     "help": "severity label of the alerts given the info level by --severity (default: info)"}),
    ("--severity", {"dest": "severities", "type": severity_override, "action": "append", "default": [],
     "metavar": "ALERT=LEVEL", "help": "the level of one alert: critical, warning or info, e.g. "
     "HighRequestLatency=info (repeatable)"}),
    ("--label", {"dest": "labels", "type": alert_label, "action": "append", "default": [],
     "metavar": "[ALERT:]NAME=VALUE", "help": "a label added to every alert, e.g. team=payments, or to "
     "one alert, e.g. ServiceDown:service=api; a label of one alert wins over the same label of every "
     "alert (repeatable)"}),
)  # fmt: skip


def register(subparsers: Any) -> None:
    """Add the ``rules`` subcommand."""
    parser = subparsers.add_parser(
        "rules",
        help="print Prometheus recording and alerting rules for obskit's metrics",
        description="Print a Prometheus rules file (YAML) with recording rules and alerts for the "
        "HTTP, job, health-check and telemetry families obskit emits. Load it with rule_files: in "
        "prometheus.yml; check it with promtool check rules.",
    )
    q.add_common_options(parser)
    for flag, keywords in _OPTIONS:
        parser.add_argument(flag, **keywords)
    q.add_slo_option(
        parser,
        "slo",
        "also write the recording rules and burn-rate alerts of the service level objectives in SOURCE",
        "see docs/slo.md",
    )
    parser.add_argument(
        "--slo-only",
        action="store_true",
        help="write only the groups of the service level objectives (of --slo; without it, of "
        "obskit.toml), for a rules file of their own next to the one written without --slo",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print (or write to ``--output``) the rules file.

    Returns 2 on a bad namespace, an unwritable output or an SLO source that cannot be loaded.
    """
    from obskit._core.errors import ConfigError

    try:
        return q.generate("rules", args, render)
    except ConfigError as error:  # from --slo: the namespace's own are handled by generate()
        print(f"obskit rules: {error}", file=sys.stderr)
        return 2


def document(args: argparse.Namespace, namespace: str) -> dict[str, Any]:
    """The rules file's content: a recording group, an alerting group, and one group per SLO.

    With ``--slo-only``, the SLO groups alone.

    Raises:
        ConfigError: an ``--slo`` source that cannot be loaded.
    """
    builder = _Builder(args, q.families(namespace))
    if getattr(args, "slo_only", False):
        return {"groups": builder.slo_groups()}
    group = "obskit" if namespace == "obskit" else f"obskit.{namespace}"
    return {
        "groups": [
            {"name": f"{group}.recording", "rules": builder.recording()},
            {"name": f"{group}.alerts", "rules": builder.alerts()},
            *builder.slo_groups(),
        ]
    }


def render(args: argparse.Namespace, namespace: str) -> str:
    """The rules file as YAML text."""
    from obskit import __version__

    header = (
        f"# Prometheus rules for obskit's metrics (namespace {namespace}), by obskit {__version__}.\n"
        "# Regenerate with `obskit rules` rather than editing; check with `promtool check rules FILE`.\n"
    )
    return header + dump_yaml(document(args, namespace))


class _Builder:
    """Builds each rule's PromQL from the options; recording rules and alerts share the builders."""

    def __init__(self, args: argparse.Namespace, families: q.Families) -> None:
        self.args = args
        self.f = families
        self.selector: tuple[str, ...] = args.selector
        self.job = args.job_label
        self.route_by = ("job", "route")
        self.job_by = tuple(dict.fromkeys(("job", self.job)))

    def _s(self, metric: str, *matchers: str) -> str:
        return q.series(metric, *matchers, *self.selector)

    def _rate(self, metric: str, window: str, labels: Sequence[str], *matchers: str) -> str:
        return f"sum {q.by(labels)} (rate({self._s(metric, *matchers)}[{window}]))"

    # -- expressions without thresholds --

    def request_rate(self) -> str:
        return self._rate(self.f.http_requests_total, self.args.window, self.route_by)

    def error_ratio(self) -> str:
        errors = self._rate(self.f.http_requests_total, self.args.window, self.route_by, 'status_code=~"5.."')
        return q.share(errors, self.request_rate())

    def latency(self, quantile: float) -> str:
        # A websocket's duration is the connection's lifetime (method="WS"): not a response time.
        buckets = self._rate(
            f"{self.f.http_duration}_bucket", self.args.window, (*self.route_by, "le"), 'method!="WS"'
        )
        return f"histogram_quantile({q.number(quantile)}, {buckets})"

    def job_rate(self) -> str:
        return self._rate(self.f.jobs_total, self.args.window, (*self.job_by, "status"))

    def job_failure_ratio(self) -> str:
        window = self.args.job_window
        errors = self._rate(self.f.jobs_total, window, self.job_by, 'status="error"')
        return q.share(errors, self._rate(self.f.jobs_total, window, self.job_by))

    def job_latency(self) -> str:
        buckets = self._rate(f"{self.f.job_duration}_bucket", self.args.job_window, (*self.job_by, "le"))
        return f"histogram_quantile(0.95, {buckets})"

    def _increase(self, metric: str, labels: Sequence[str]) -> str:
        return f"sum {q.by(labels)} (increase({self._s(metric)}[{self.args.window}]))"

    # -- rules --

    def recording(self) -> list[Rule]:
        w, jw = self.args.window, self.args.job_window
        route, jobs = "_".join(self.route_by), "_".join(self.job_by)
        http, duration = self.f.http_requests_total.removesuffix("_total"), self.f.http_duration
        total = self.f.jobs_total.removesuffix("_total")
        return [
            {"record": f"{route}:{http}:rate{w}", "expr": self.request_rate()},
            {"record": f"{route}:{http}_5xx:ratio_rate{w}", "expr": self.error_ratio()},
            {"record": f"{route}:{duration}:p50_rate{w}", "expr": self.latency(0.5)},
            {"record": f"{route}:{duration}:p95_rate{w}", "expr": self.latency(0.95)},
            {"record": f"{jobs}_status:{total}:rate{w}", "expr": self.job_rate()},
            {"record": f"{jobs}:{total}_error:ratio_rate{jw}", "expr": self.job_failure_ratio()},
            {"record": f"{jobs}:{self.f.job_duration}:p95_rate{jw}", "expr": self.job_latency()},
        ]

    def alerts(self) -> list[Rule]:
        return [*self._http_alerts(), *self._job_alerts(), *self._service_alerts(), *self._telemetry_alerts()]

    def _http_alerts(self) -> list[Rule]:
        a, where = self.args, "{{ $labels.route }} on {{ $labels.job }}"
        return [
            self._alert(
                "HighErrorRate",
                f"{self.error_ratio()}\n  > {q.number(a.error_rate)}",
                a.pending,
                critical=True,
                summary=f"High 5xx error rate on {where}",
                description=f"{{{{ $value | humanizePercentage }}}} of the requests to {where} answered 5xx "
                f"over the last {a.window} (threshold {a.error_rate * 100:g}%).",
            ),
            self._alert(
                "HighRequestLatency",
                f"{self.latency(0.95)}\n  > {q.number(a.latency_p95)}",
                a.pending,
                summary=f"Slow responses on {where}",
                description=f"The p95 duration of requests to {where} is {{{{ $value | humanizeDuration }}}} "
                f"over the last {a.window} (threshold {a.latency_p95:g}s).",
            ),
        ]

    def _job_alerts(self) -> list[Rule]:
        a, run_of = self.args, f"job {{{{ $labels.{self.job} }}}} on {{{{ $labels.job }}}}"
        return [
            self._alert(
                "JobsStuck",
                self._stuck(),
                a.stuck_for,
                critical=True,
                summary=f"Runs of {run_of} look stuck",
                description=f"{{{{ $value }}}} run(s) of {run_of} in progress and none finished "
                f"for at least {a.stuck_for}.",
            ),
            self._alert(
                "HighJobFailureRate",
                f"{self.job_failure_ratio()}\n  > {q.number(a.job_failure_rate)}",
                a.pending,
                summary=f"Runs of {run_of} are failing",
                description=f"{{{{ $value | humanizePercentage }}}} of the runs of {run_of} failed over the "
                f"last {a.job_window} (threshold {a.job_failure_rate * 100:g}%).",
            ),
        ]

    def _service_alerts(self) -> list[Rule]:
        a = self.args
        return [
            self._alert(
                "ServiceDown",
                f"{self._s('up')} == 0",
                a.down_for,
                critical=True,
                summary="Target {{ $labels.instance }} of {{ $labels.job }} is down",
                description="Prometheus has failed to scrape {{ $labels.instance }} (job {{ $labels.job }}) "
                f"for at least {a.down_for}.",
            ),
            self._alert(
                "HealthCheckFailing",
                f"{self._s(self.f.health_status)} == 0",
                a.pending,
                summary="Health check {{ $labels.check }} is failing on {{ $labels.instance }}",
                description="The latest run of health check {{ $labels.check }} on {{ $labels.instance }} "
                f"(job {{{{ $labels.job }}}}) was degraded or unhealthy, for at least {a.pending}.",
            ),
        ]

    def _telemetry_alerts(self) -> list[Rule]:
        a = self.args
        return [
            self._alert(
                "TelemetryDropped",
                f"{self._increase(self.f.dropped_total, ('job', 'instance', 'signal', 'reason'))} > 0",
                a.pending,
                summary="{{ $labels.instance }} is dropping {{ $labels.signal }}",
                description="{{ $value | humanize }} {{ $labels.signal }} item(s) were not delivered "
                f"(reason {{{{ $labels.reason }}}}) by {{{{ $labels.instance }}}} over the last {a.window}.",
            ),
            self._alert(
                "MetricSeriesOverflow",
                f"{self._increase(self.f.overflow_total, ('job', 'instance', 'metric'))} > 0",
                a.pending,
                summary="Metric {{ $labels.metric }} reached its series cap on {{ $labels.instance }}",
                description="{{ $value | humanize }} recording(s) of {{ $labels.metric }} went to the "
                f"__overflow__ series over the last {a.window}: a label has too many values.",
            ),
        ]

    def slo_groups(self) -> list[dict[str, Any]]:
        """One group per objective of the ``--slo`` sources (none without the option).

        With ``--slo-only`` and no ``--slo``, one per objective of obskit.toml.
        """
        sources = getattr(self.args, "slo", None) or []
        if not sources and getattr(self.args, "slo_only", False):
            sources = [q.DEFAULT_SLO_SOURCE]
        if not sources:
            return []
        from obskit._cli import _slo

        labels = {alert: self._labels(alert, critical=alert in _slo.CRITICAL) for alert in _slo.ALERTS}
        return [
            _slo.group(o, self.f, job_label=self.job, selector=self.selector, alert_labels=labels)
            for o in _slo.load_all(sources)
        ]

    def _stuck(self) -> str:
        labels = self.job_by
        running = f"sum {q.by(labels)} ({self._s(self.f.jobs_in_progress)}) > 0"
        finished = f"sum {q.by(labels)} (increase({self._s(self.f.jobs_total)}[{self.args.stuck_for}])) > 0"
        # ``unless``, not ``and ... == 0``: a job whose first run hangs has no counter series yet.
        return f"{running}\nunless on ({', '.join(labels)})\n{finished}"

    def _alert(
        self, name: str, expr: str, pending: str, *, summary: str, description: str, critical: bool = False
    ) -> Rule:
        return {
            "alert": name,
            "expr": expr,
            "for": pending,
            "labels": self._labels(name, critical=critical),
            "annotations": {"summary": summary, "description": description},
        }

    def _labels(self, name: str, *, critical: bool) -> dict[str, str]:
        """An alert's labels: its severity (``--severity``, ``--*-severity``) and those of ``--label``."""
        level = dict(self.args.severities).get(name, "critical" if critical else "warning")
        labels = {"severity": getattr(self.args, f"{level}_severity")}
        labels.update((label, value) for alert, label, value in self.args.labels if not alert)
        labels.update((label, value) for alert, label, value in self.args.labels if alert == name)
        return labels


# -- YAML -----------------------------------------------------------------------------------------

_PLAIN = re.compile(r"[A-Za-z](?:[A-Za-z0-9_.:]*[A-Za-z0-9_])?|(?:\d+(?:ms|[smhdwy]))+")
#: Plain words YAML 1.1 (Prometheus' parser) reads as booleans or null.
_RESERVED = frozenset({"y", "n", "yes", "no", "true", "false", "on", "off", "null"})


def dump_yaml(document: Mapping[str, Any]) -> str:
    """Block-style YAML for nested mappings and lists whose leaves are strings."""
    return "\n".join(_mapping(document, 0)) + "\n"


def _mapping(mapping: Mapping[str, Any], indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    for key, value in mapping.items():
        prefix = f"{pad}{_scalar(key)}:"
        if isinstance(value, Mapping):
            lines.append(prefix if value else f"{prefix} {{}}")
            lines.extend(_mapping(value, indent + 2))
        elif isinstance(value, list):
            lines.append(prefix if value else f"{prefix} []")
            lines.extend(_sequence(value, indent + 2))
        elif _literal_ok(value):
            lines.append(f"{prefix} |-")
            lines.extend(f"{pad}  {line}" if line else "" for line in value.split("\n"))
        else:
            lines.append(f"{prefix} {_scalar(value)}")
    return lines


def _sequence(items: list[Any], indent: int) -> list[str]:
    lines: list[str] = []
    for item in items:
        if isinstance(item, Mapping) and item:
            body = _mapping(item, indent + 2)
            body[0] = f"{' ' * indent}- {body[0][indent + 2 :]}"
            lines.extend(body)
        else:
            lines.append(f"{' ' * indent}- {_scalar(item)}")
    return lines


def _literal_ok(value: object) -> bool:
    """A multi-line string a ``|-`` block keeps exactly."""
    if not isinstance(value, str) or "\n" not in value or value[0] in " \n" or value.endswith("\n"):
        return False
    return all(line.isprintable() and line == line.rstrip() for line in value.split("\n"))


def _scalar(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"only strings are written as YAML scalars here, not {value!r}")
    if _PLAIN.fullmatch(value) and value.lower() not in _RESERVED:
        return value
    if value.isprintable():
        return "'" + value.replace("'", "''") + "'"
    return json.dumps(value)  # a JSON string is a valid YAML double-quoted scalar
