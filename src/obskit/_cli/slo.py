"""``obskit slo report``: each objective's SLI, error budget left, burn rates and SLO alerts.

It asks a Prometheus server (its HTTP API, ``/api/v1/query``) for what the recording rules of
``obskit rules --slo`` record (``obskit_slo:...{slo="<name>"}``). An objective whose rules are
not loaded there is computed from the raw series instead, with the same expressions the rules
use; the report says which it used. An objective with no traffic in a window has no data for
it: the report says so rather than showing NaN.

Exit status: 0 when no SLO alert fires (a pending one included), 1 when at least one
``SLOBurnRate*`` alert of a reported objective fires, 2 when the report cannot be made (a bad
option or objectives source, Prometheus unreachable or refusing a query).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from obskit._cli import _promql as q

if TYPE_CHECKING:
    from obskit._recording.slo import Objective

__all__ = ["ReportError", "describe", "load_objectives", "percent", "register", "run_report", "slo_matcher"]

#: The objectives source read when ``--slo`` names none and the file exists in the current directory.
DEFAULT_SOURCE = q.DEFAULT_SLO_SOURCE
#: The alerts ``obskit rules --slo`` writes are named ``SLOBurnRate<level>``.
ALERT_PREFIX = "SLOBurnRate"

EXIT_OK, EXIT_FIRING, EXIT_ERROR = 0, 1, 2
RECORDED, RAW = "recording rules", "raw expressions"


class ReportError(Exception):
    """The report cannot be made: the message says why (printed after ``obskit <command>:``)."""


# -- shared with ``obskit dashboard --slo`` -------------------------------------------------------


def load_objectives(sources: Sequence[str]) -> tuple[Objective, ...]:
    """The objectives declared in ``sources``, in order, each name once.

    Raises:
        ReportError: a source cannot be read or declares a bad objective, or two sources
            declare the same name differently.
    """
    from obskit._cli._slo import load_all

    try:
        return load_all(sources)
    except (ValueError, OSError, ImportError) as error:  # ConfigError is a ValueError
        raise ReportError(str(error)) from None


def slo_matcher(name: str) -> str:
    """``slo="<name>"``: a PromQL matcher for one objective's series (a JSON string is a PromQL one)."""
    return f"slo={json.dumps(name, ensure_ascii=False)}"


def describe(objective: Objective) -> str:
    """What the objective measures, for a title: ``availability``, ``latency under 0.3s``..."""
    kind = objective.kind
    if kind == "latency" and objective.threshold is not None:
        return f"latency under {objective.threshold:g}s"
    if kind == "job":
        return f"success of job {objective.job}" if objective.job else "job success"
    if kind == "external":
        return f"availability of calls to {objective.target}" if objective.target else "external calls"
    return str(kind)


def percent(ratio: float, digits: int = 3, *, down: bool = False) -> str:
    """``0.999`` -> ``99.9%``: at most ``digits`` decimals, rounded, or rounded down with ``down``.

    An SLI is rounded down: 99.89996% is not shown as the 99.9% it misses.
    """
    value = ratio * 100
    if down:
        scale = 10**digits
        value = math.floor(value * scale + 1e-6) / scale  # 1e-6: 99.85 is 99.84999... in binary
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return f"{'0' if text == '-0' else text}%"


# -- the command ----------------------------------------------------------------------------------


def _url(value: str) -> str:
    text = value.strip().rstrip("/")
    if not re.fullmatch(r"https?://[^\s/?#]+(?:/[^\s?#]*)?", text):
        shown = re.sub(r"//[^/@]*@", "//***@", value)  # no password in the message
        raise argparse.ArgumentTypeError(
            f"invalid value {shown!r}; allowed: an http:// or https:// URL, e.g. http://prometheus:9090"
        )
    return text


def register(subparsers: Any) -> None:
    """Add the ``slo`` subcommand and its ``report`` subcommand (imports nothing heavy)."""
    slo = subparsers.add_parser(
        "slo",
        help="report on service level objectives (SLI, error budget, burn-rate alerts)",
        description="Service level objectives: obskit rules --slo writes their rules, "
        "obskit dashboard --slo their panels, and obskit slo report reads them back.",
    )
    commands = slo.add_subparsers(title="commands", metavar="COMMAND", required=True)
    parser = commands.add_parser(
        "report",
        help="print each objective's SLI, error budget left, burn rates and alerts",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--prometheus",
        required=True,
        type=_url,
        metavar="URL",
        help="the Prometheus server to ask, e.g. http://prometheus:9090; basic auth as "
        "http://user:password@host:9090",
    )
    parser.add_argument(
        "--bearer-token-file",
        metavar="FILE",
        help="a file holding a bearer token to send (Authorization: Bearer), as Prometheus' "
        "credentials_file; never printed",
    )
    q.add_slo_option(
        parser,
        "sources",
        "where the objectives are declared",
        f"default: {DEFAULT_SOURCE} if the current directory has one, else the objectives whose "
        "recording rules Prometheus has",
    )
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", help="output format (default: text)"
    )
    parser.add_argument(
        "--timeout",
        type=q.positive_seconds,
        default=10.0,
        metavar="SECONDS",
        help="how long to wait for each answer of Prometheus (default: 10)",
    )
    parser.add_argument(
        "--namespace",
        metavar="NS",
        help="metric namespace of the families queried where the recording rules are not loaded "
        "(default: $OBSKIT_METRIC_NAMESPACE, else obskit)",
    )
    parser.add_argument(
        "--job-label",
        type=q.label_name,
        default=q.DEFAULT_JOB_LABEL,
        metavar="LABEL",
        help="the label holding obskit's job name, as given to obskit rules (default: job_name)",
    )
    parser.add_argument(
        "--selector",
        type=q.matchers,
        default=(),
        metavar="MATCHERS",
        help="label matchers added to the raw series selectors, as given to obskit rules (default: none)",
    )
    parser.set_defaults(run=run_report)


def run_report(args: argparse.Namespace) -> int:
    """Print the report; the exit status (0 ok, 1 an SLO alert firing, 2 no report)."""
    try:
        api = PrometheusAPI(args.prometheus, args.timeout, _bearer_token(args.bearer_token_file))
        readings = _readings(args, api)
    except ReportError as error:
        print(f"obskit slo report: {error}", file=sys.stderr)
        return EXIT_ERROR
    if args.format == "json":
        document = {
            "prometheus": api.url,
            "firing": any(r.firing for r in readings),
            "objectives": [r.to_dict() for r in readings],
        }
        print(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        print(render_text(api.url, readings))
    return EXIT_FIRING if any(r.firing for r in readings) else EXIT_OK


def _bearer_token(path: str | None) -> str | None:
    """The token in the file of ``--bearer-token-file`` (surrounding whitespace removed), if given.

    Raises:
        ReportError: the file cannot be read, is empty, or holds more than one line of printable
            ASCII (what an HTTP header can carry).
    """
    if path is None:
        return None
    option = f"--bearer-token-file {path}"
    try:
        with open(path, encoding="utf-8") as file:
            token = file.read().strip()
    except (OSError, UnicodeDecodeError) as error:
        raise ReportError(f"cannot read {option}: {getattr(error, 'strerror', None) or error}") from None
    if not token:
        raise ReportError(f"{option} is empty; allowed: a file holding the token")
    if not (token.isascii() and token.isprintable()):
        raise ReportError(f"{option} holds more than a token; allowed: one line of printable ASCII")
    return token


def _readings(args: argparse.Namespace, api: PrometheusAPI) -> list[Reading]:
    from obskit._cli import _slo
    from obskit._core.errors import ConfigError

    sources: list[str] = list(args.sources)
    if not sources and os.path.isfile(DEFAULT_SOURCE):
        sources = [DEFAULT_SOURCE]
    objectives = load_objectives(sources) if sources else ()
    rules = _loaded_rules(api)
    recorded = _recorded_objectives(api, rules)
    specs: list[Spec]
    if sources:
        specs = [Spec.of(o) for o in objectives]
    else:
        specs = [spec for _, (spec, _) in sorted(recorded.items())]
        if not specs:
            raise ReportError(
                f"no objectives: Prometheus at {api.url} has no {_slo.OBJECTIVE} series (load the "
                f"rules of obskit rules --slo) and there is no {DEFAULT_SOURCE} here; name a source "
                "with --slo"
            )
    windows = tuple(_slo.WINDOWS)
    alerts = _alerts(api)
    readings = []
    families: q.Families | None = None
    for spec in specs:
        found = recorded.get(spec.name)
        note = ""
        if found is not None and spec.declared is not None:
            loaded, loaded_windows = found
            other_period = bool(loaded_windows) and spec.window not in loaded_windows
            if other_period or not math.isclose(loaded.objective, spec.objective, abs_tol=1e-9):
                period = f" over {loaded.window}" if loaded_windows else ""
                note = (
                    f"the rules in Prometheus are for {percent(loaded.objective)}{period}: "
                    "regenerate them with obskit rules --slo"
                )
            if other_period:  # the declared period's ratio is not recorded
                found = None
        if found is not None:
            ratios = _recorded_ratios(api, spec, windows)
            used = RECORDED
        else:
            if families is None:
                try:
                    families = q.families(q.resolve_namespace(args.namespace))
                except ConfigError as error:
                    raise ReportError(str(error)) from None
            assert spec.declared is not None  # only declared objectives can lack recording rules
            ratios = {
                w: _worst(
                    api.query(
                        _slo.error_ratio(
                            spec.declared, w, families, job_label=args.job_label, selector=args.selector
                        )
                    )
                )
                for w in (*windows, spec.window)
            }
            used = RAW
        readings.append(
            Reading(
                spec=spec,
                series=used,
                windows=windows,
                error_ratios=ratios,
                alerts=sorted(alerts.get(spec.name, ())),
                alert_rules=None if rules is None else spec.name in rules.alerted,
                note=note,
            )
        )
    return readings


# -- what the report holds ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Spec:
    """An objective as the report needs it: declared in a source, or read from the recorded series."""

    name: str
    kind: str
    objective: float
    window: str
    title: str
    declared: Objective | None = None

    @classmethod
    def of(cls, objective: Objective) -> Spec:
        return cls(
            objective.name,
            objective.kind,
            objective.objective,
            objective.window,
            describe(objective),
            objective,
        )


@dataclasses.dataclass(frozen=True)
class Reading:
    """One objective's figures; an error ratio of None means no data (no traffic in the window)."""

    spec: Spec
    series: str  # RECORDED or RAW
    windows: tuple[str, ...]
    error_ratios: Mapping[str, float | None]
    alerts: Sequence[tuple[str, str, str]]  # (alertname, state, severity)
    alert_rules: bool | None  # whether Prometheus has SLO alert rules for it (None: unknown)
    note: str = ""  # what the operator should know: rules loaded for another objective

    @property
    def budget(self) -> float:
        """The error budget: the share of events allowed to fail (rounded as the rules round it)."""
        return float(f"{1 - self.spec.objective:.12g}")

    @property
    def sli(self) -> float | None:
        ratio = self.error_ratios.get(self.spec.window)
        return None if ratio is None else 1 - ratio

    @property
    def budget_remaining(self) -> float | None:
        ratio = self.error_ratios.get(self.spec.window)
        return None if ratio is None else 1 - ratio / self.budget

    @property
    def burn_rates(self) -> dict[str, float | None]:
        return {w: None if (r := self.error_ratios.get(w)) is None else r / self.budget for w in self.windows}

    @property
    def firing(self) -> bool:
        return any(state == "firing" for _, state, _ in self.alerts)

    def to_dict(self) -> dict[str, Any]:
        s = self.spec
        return {
            "name": s.name,
            "kind": s.kind,
            "objective": s.objective,
            "window": s.window,
            "series": "recorded" if self.series == RECORDED else "raw",
            "sli": self.sli,
            "error_budget_remaining": self.budget_remaining,
            "burn_rates": self.burn_rates,
            "alerts": [{"alertname": a, "state": st, "severity": sev} for a, st, sev in self.alerts],
            "alert_rules_loaded": self.alert_rules,
            "firing": self.firing,
            "note": self.note or None,
        }


def _number(ratio: float) -> str:
    return f"{ratio:.2f}".rstrip("0").rstrip(".")


def _row(label: str, value: str) -> str:
    return f"  {label:<16} {value}"


def render_text(url: str, readings: Sequence[Reading]) -> str:
    """The report for a terminal: a block per objective."""
    lines = [f"SLO report from Prometheus at {url}"]
    for r in readings:
        s = r.spec
        source = RECORDED if r.series == RECORDED else f"{RAW}: its recording rules are not loaded"
        lines += ["", f"{s.name}: {s.title}, objective {percent(s.objective)} over {s.window} ({source})"]
        if r.sli is None or r.budget_remaining is None:
            lines.append(_row(f"SLI over {s.window}", "no data (no events in the window)"))
        else:
            left = r.budget_remaining
            note = " (exhausted)" if left <= 0 else ""
            lines.append(_row(f"SLI over {s.window}", percent(r.sli, down=True)))
            lines.append(
                _row("budget left", f"{percent(left, 1)} of a {percent(r.budget)} error budget{note}")
            )
        burns = [f"{w} {'no data' if b is None else _number(b) + 'x'}" for w, b in r.burn_rates.items()]
        no_data = all(b is None for b in r.burn_rates.values())
        lines.append(_row("burn rate", "no data" if no_data else ", ".join(burns)))
        if r.alerts:
            shown = ", ".join(f"{a} {st}" + (f" ({sev})" if sev else "") for a, st, sev in r.alerts)
        elif r.alert_rules is False:
            shown = "none (no SLO alert rules for it in this Prometheus)"
        else:
            shown = "none pending or firing"
        lines.append(_row("alerts", shown))
        if r.note:
            lines.append(_row("note", r.note))
    return "\n".join(lines)


# -- Prometheus -----------------------------------------------------------------------------------


class PrometheusAPI:
    """Prometheus' HTTP API over urllib: each error becomes a ReportError naming the URL."""

    def __init__(self, url: str, timeout: float, bearer_token: str | None = None) -> None:
        """Where to ask, and with which credentials.

        Raises:
            ReportError: both credentials in the URL and a bearer token.
        """
        import base64
        import urllib.parse

        # Credentials in the URL (http://user:password@host) go into a basic-auth header; the
        # URL shown in the report and its errors is the one without them.
        parts = urllib.parse.urlsplit(url)
        self.authorization = f"Bearer {bearer_token}" if bearer_token else ""
        self.bearer = bool(bearer_token)
        if parts.username is not None or parts.password is not None:
            user = urllib.parse.unquote(parts.username or "")
            password = urllib.parse.unquote(parts.password or "")
            parts = parts._replace(netloc=parts.netloc.rpartition("@")[2])
            if self.bearer:
                raise ReportError(
                    f"credentials given twice, in the URL of --prometheus {urllib.parse.urlunsplit(parts)} "
                    "and in --bearer-token-file; allowed: one of them"
                )
            token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            self.authorization = f"Basic {token}"
        self.url = urllib.parse.urlunsplit(parts)
        self.timeout = timeout

    def get(self, path: str, params: Mapping[str, str]) -> Any:
        """The ``data`` of a successful answer to ``GET <url><path>?<params>``."""
        import urllib.error
        import urllib.parse
        import urllib.request

        request = urllib.request.Request(f"{self.url}{path}?{urllib.parse.urlencode(params)}")
        if self.authorization:
            request.add_unredirected_header("Authorization", self.authorization)
        what = f"Prometheus at {self.url}"
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status, body = response.status, response.read()
        except urllib.error.HTTPError as error:
            with error:
                status, body = error.code, error.read()
        except urllib.error.URLError as error:
            raise ReportError(f"cannot reach {what}: {error.reason}") from None
        except (OSError, ValueError) as error:  # a timeout while reading; a bad port (InvalidURL)
            raise ReportError(f"cannot reach {what}: {error}") from None
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        if status in (401, 403) and not isinstance(answer, dict):
            if self.bearer:
                given = "refused the bearer token of --bearer-token-file"
            else:
                given = "refused the credentials in the URL" if self.authorization else "wants credentials"
            raise ReportError(
                f"{what} {given} (HTTP {status}); basic auth goes in the URL: "
                "http://user:password@host:9090, a bearer token in --bearer-token-file FILE"
            )
        if not isinstance(answer, dict) or "status" not in answer:
            raise ReportError(
                f"{what} answered HTTP {status} to {path}, not as the Prometheus HTTP API: is it one?"
            )
        if answer["status"] != "success":
            detail = answer.get("error") or answer.get("errorType") or "an error"
            query = f" to the query {params['query']!r}" if "query" in params else ""
            raise ReportError(f"{what} answered {detail}{query} (HTTP {status})")
        return answer.get("data")

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The series an instant query answers (a vector; a scalar answers as one series)."""
        data = self.get("/api/v1/query", {"query": expr})
        if data.get("resultType") == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data.get("result") or []
        return result


def _value(sample: Mapping[str, Any]) -> float | None:
    """A sample's value; None for NaN or an infinity (a ratio of nothing: no data)."""
    try:
        value = float(sample["value"][1])
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _worst(result: Iterable[Mapping[str, Any]]) -> float | None:
    """The highest error ratio among the series answered (one, normally), or None for none."""
    values = [v for v in map(_value, result) if v is not None]
    return max(values) if values else None


def _recorded_objectives(
    api: PrometheusAPI, rules: LoadedRules | None
) -> dict[str, tuple[Spec, frozenset[str]]]:
    """The objectives whose recording rules Prometheus evaluates, by name, with their windows.

    The windows come from the rules API where Prometheus has it, else from the ratio series
    (which a window without traffic lacks).
    """
    from obskit._cli._slo import ERROR_RATIO, OBJECTIVE

    windows: dict[str, set[str]] = {}
    if rules is not None:
        windows = {name: set(found) for name, found in rules.recorded.items()}
    else:
        for series in api.query(f'group by (__name__, slo) ({{__name__=~"{ERROR_RATIO}.+"}})'):
            metric = series.get("metric", {})
            window = metric.get("__name__", "").removeprefix(ERROR_RATIO)
            windows.setdefault(metric.get("slo", ""), set()).add(window)
    specs: dict[str, tuple[Spec, frozenset[str]]] = {}
    for series in api.query(OBJECTIVE):
        metric = series.get("metric", {})
        name, objective = metric.get("slo"), _value(series)
        if not name or objective is None or name in specs:
            continue
        kind = metric.get("slo_kind", "")
        found = frozenset(windows.get(name, ()))
        specs[name] = (Spec(name, kind, objective, _period(found), kind or "objective"), found)
    return specs


def _period(windows: Iterable[str]) -> str:
    """The objective's period among the windows recorded for it: the longest (30d when none)."""
    from obskit._cli._slo import WINDOWS

    extra = [w for w in windows if w and w not in WINDOWS]
    return max(extra, key=_seconds) if extra else "30d"


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)(ms|[smhdwy])", duration))


def _recorded_ratios(api: PrometheusAPI, spec: Spec, windows: Sequence[str]) -> dict[str, float | None]:
    from obskit._cli._slo import ERROR_RATIO

    by_window: dict[str, list[dict[str, Any]]] = {}
    selector = f'{{__name__=~"{ERROR_RATIO}.+",{slo_matcher(spec.name)}}}'
    for series in api.query(selector):
        window = series.get("metric", {}).get("__name__", "").removeprefix(ERROR_RATIO)
        by_window.setdefault(window, []).append(series)
    return {w: _worst(by_window.get(w, ())) for w in (*windows, spec.window)}


def _alerts(api: PrometheusAPI) -> dict[str, set[tuple[str, str, str]]]:
    """The SLO alerts pending or firing, by objective name."""
    found: dict[str, set[tuple[str, str, str]]] = {}
    for series in api.query(f'ALERTS{{alertname=~"{ALERT_PREFIX}.*"}}'):
        metric = series.get("metric", {})
        if _value(series) != 1 or "slo" not in metric:
            continue
        alert = (metric.get("alertname", ""), metric.get("alertstate", ""), metric.get("severity", ""))
        found.setdefault(metric["slo"], set()).add(alert)
    return found


_SLO_MATCHER = re.compile(r'slo="((?:[^"\\]|\\.)*)"')


def _unquote(text: str) -> str:
    try:
        value = json.loads(f'"{text}"')
    except ValueError:
        return text
    return str(value)


@dataclasses.dataclass(frozen=True)
class LoadedRules:
    """What Prometheus' rules API says of the SLO rules: windows recorded and alerts, by objective."""

    recorded: Mapping[str, frozenset[str]]
    alerted: frozenset[str]


def _loaded_rules(api: PrometheusAPI) -> LoadedRules | None:
    """The SLO rules Prometheus evaluates; None when it does not say (no rules API)."""
    from obskit._cli._slo import ERROR_RATIO

    try:
        data = api.get("/api/v1/rules", {})
    except ReportError:
        return None
    recorded: dict[str, set[str]] = {}
    alerted: set[str] = set()
    for group in (data or {}).get("groups", []):
        for rule in group.get("rules", []):
            name = str(rule.get("name", ""))
            label = (rule.get("labels") or {}).get("slo")
            if name.startswith(ERROR_RATIO) and label:
                recorded.setdefault(label, set()).add(name.removeprefix(ERROR_RATIO))
            elif name.startswith(ALERT_PREFIX) and label:
                alerted.add(label)
            elif name.startswith(ALERT_PREFIX):  # the label comes from the series: named in the query
                alerted.update(_unquote(m) for m in _SLO_MATCHER.findall(str(rule.get("query", ""))))
    return LoadedRules({k: frozenset(v) for k, v in recorded.items()}, frozenset(alerted))
