"""SLO rules: the error ratios, burn rates, budget and burn-rate alerts of each objective.

Multi-window, multi-burn-rate alerts as in the Google SRE workbook ("Alerting on SLOs"): an
alert fires when the budget burns faster than a factor over a long window and, to stop soon
after the burn stops, over a short one too (:data:`ALERT_TABLE`). The error ratio over each
window is recorded once per objective and the alerts read the recorded burn rates, in the same
group (a group's rules are evaluated in order, so each alert reads this evaluation's values).

No traffic, no ratio: each ratio divides by the total only where it is above 0, so a window
without a single event has no series (no 0/0 NaN), its burn rate none either, and an alert,
needing both of its windows, does not fire. docs/slo.md says what each kind counts.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, cast

from obskit._cli import _promql as q
from obskit._recording.slo import Objective

__all__ = [
    "ALERTS",
    "ALERT_TABLE",
    "BUDGET_REMAINING",
    "BURN_RATE",
    "ERROR_RATIO",
    "OBJECTIVE",
    "WINDOWS",
    "alert_expression",
    "error_ratio",
    "group",
    "load_all",
    "windows",
]

#: The windows every objective's error ratio and burn rate are recorded over (and its period).
WINDOWS: Final = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
#: (alert, burn factor, long window, short window): the workbook's table for a 30-day period.
#: A factor ``f`` over a window ``w`` spends ``f * w / 30d`` of the budget: 2% in 1h at 14.4x,
#: 5% in 6h at 6x, 10% in 1d at 3x, 10% in 3d at 1x.
ALERT_TABLE: Final = (
    ("SLOBurnRatePage", 14.4, "1h", "5m"),
    ("SLOBurnRatePage", 6.0, "6h", "30m"),
    ("SLOBurnRateTicket", 3.0, "1d", "2h"),
    ("SLOBurnRateTicket", 1.0, "3d", "6h"),
)
#: The SLO alerts, in the order written; the page is critical, the ticket a warning by default.
ALERTS: Final = ("SLOBurnRatePage", "SLOBurnRateTicket")
CRITICAL: Final = frozenset({"SLOBurnRatePage"})

#: Recorded series; the first two take a window as suffix (``obskit_slo:sli_error:ratio_rate5m``).
ERROR_RATIO: Final = "obskit_slo:sli_error:ratio_rate"
BURN_RATE: Final = "obskit_slo:burn_rate:rate"
OBJECTIVE: Final = "obskit_slo:objective:ratio"
BUDGET_REMAINING: Final = "obskit_slo:error_budget_remaining:ratio"

Rule = dict[str, Any]


def windows(objective: Objective) -> tuple[str, ...]:
    """:data:`WINDOWS` and the objective's period (once, when it is one of them)."""
    return tuple(dict.fromkeys((*WINDOWS, objective.window)))


def _string(value: str) -> str:
    """A PromQL string literal."""
    return json.dumps(value, ensure_ascii=False)


def _le(threshold: float) -> str:
    """The ``le`` matcher of a bucket bound, in each way exporters write it.

    prometheus_client (obskit's exposition) writes ``1.0`` and ``0.25``; OpenTelemetry's
    Prometheus exporters the shortest plain form, ``1`` and ``0.25``.
    """
    from decimal import Decimal

    from prometheus_client import utils

    go_string = cast("Callable[[float], str]", utils.floatToGoString)
    plain = format(Decimal(repr(float(threshold))).normalize(), "f")
    forms = list(dict.fromkeys((go_string(threshold), plain)))
    if len(forms) == 1:
        return f"le={_string(forms[0])}"
    return "le=~" + _string("|".join(re.escape(form) for form in forms))


def _matchers(objective: Objective, job_label: str, selector: Sequence[str]) -> list[str]:
    """The objective's selectors as label matchers (without the bad-event matcher)."""
    found: list[str] = []
    if objective.kind in ("availability", "latency"):
        if objective.route is not None:
            found.append(f"route={_string(objective.route)}")
        if objective.method is not None:
            found.append(f"method={_string(objective.method)}")
        elif objective.kind == "latency":
            found.append('method!="WS"')  # a websocket's duration is the connection's life
    elif objective.kind == "job":
        found.append(f"{job_label}={_string(objective.job or '')}")
    else:
        found.append(f"service={_string(objective.target or '')}")
    found.extend(f"{name}={_string(value)}" for name, value in objective.labels.items())
    found.extend(selector)
    return found


def _sum_rate(metric: str, matchers: Iterable[str], window: str) -> str:
    return f"sum(rate({q.series(metric, *matchers)}[{window}]))"


def error_ratio(
    objective: Objective,
    window: str,
    families: q.Families,
    *,
    job_label: str = q.DEFAULT_JOB_LABEL,
    selector: Sequence[str] = (),
) -> str:
    """The SLI's error ratio over ``window``: bad events' rate over all events' rate.

    No series when there was no event in the window (never a division by zero).
    """
    where = _matchers(objective, job_label, selector)
    if objective.kind == "latency":
        count = _sum_rate(f"{families.http_duration}_count", where, window)
        fast = _sum_rate(f"{families.http_duration}_bucket", [*where, _le(objective.threshold or 0)], window)
        return f"(\n  {count}\n    -\n  {fast}\n)\n  /\n({count} > 0)"
    if objective.kind == "availability":
        metric, bad = families.http_requests_total, 'status_code=~"5.."'
    elif objective.kind == "job":
        metric, bad = families.jobs_total, 'status="error"'
    else:
        metric, bad = f"{families.external_duration}_count", 'status="error"'
    total = _sum_rate(metric, where, window)
    errors = _sum_rate(metric, [*where, bad], window)
    # ``or ... * 0``: no bad series yet (no 5xx ever) is a ratio of 0, not none.
    return f"(\n  {errors}\n    or\n  {total} * 0\n)\n  /\n({total} > 0)"


def _recorded(metric: str, objective: Objective) -> str:
    return f"{metric}{{slo={_string(objective.name)}}}"


def alert_expression(objective: Objective, alert: str) -> str:
    """The alert's condition: every (long and short window) pair of its rows of :data:`ALERT_TABLE`."""
    pairs = []
    for name, factor, long, short in ALERT_TABLE:
        if name == alert:
            pairs.append(
                f"(\n  {_recorded(BURN_RATE + long, objective)} > {q.number(factor)}\n    and\n"
                f"  {_recorded(BURN_RATE + short, objective)} > {q.number(factor)}\n)"
            )
    return "\nor\n".join(pairs)


def _alert_text(alert: str) -> tuple[str, str]:
    rows = [row for row in ALERT_TABLE if row[0] == alert]
    table = ", or ".join(f"{q.number(f)}x over {long} and {short}" for _, f, long, short in rows)
    speed = "fast" if alert in CRITICAL else "steadily"
    summary = f"SLO {{{{ $labels.slo }}}} is burning its error budget {speed}"
    description = (
        "The {{ $labels.slo_kind }} SLO {{ $labels.slo }} spends its error budget "
        f"{{{{ $value | humanize }}}} times as fast as its period allows (the alert: {table})."
    )
    return summary, description


def group(
    objective: Objective,
    families: q.Families,
    *,
    job_label: str = q.DEFAULT_JOB_LABEL,
    selector: Sequence[str] = (),
    alert_labels: dict[str, dict[str, str]] | None = None,
) -> dict[str, Any]:
    """The objective's rule group ``obskit-slo-<name>``: recording rules, then the two alerts.

    ``alert_labels`` gives each alert's labels (severity and those of ``--label``), by alert.
    """
    identity = {"slo": objective.name, "slo_kind": objective.kind}
    budget = q.number(objective.budget)
    periods = windows(objective)
    rules: list[Rule] = [
        {
            "record": ERROR_RATIO + w,
            "expr": error_ratio(objective, w, families, job_label=job_label, selector=selector),
            "labels": dict(identity),
        }
        for w in periods
    ]
    rules.append(
        {"record": OBJECTIVE, "expr": f"vector({q.number(objective.objective)})", "labels": dict(identity)}
    )
    rules.extend(
        {
            "record": BURN_RATE + w,
            "expr": f"{_recorded(ERROR_RATIO + w, objective)} / {budget}",
            "labels": dict(identity),
        }
        for w in periods
    )
    rules.append(
        {
            "record": BUDGET_REMAINING,
            "expr": f"1 - {_recorded(ERROR_RATIO + objective.window, objective)} / {budget}",
            "labels": dict(identity),
        }
    )
    for alert in ALERTS:
        summary, description = _alert_text(alert)
        default = {"severity": "critical" if alert in CRITICAL else "warning"}
        labels = dict((alert_labels or {}).get(alert, default))
        labels.update(identity)
        rules.append(
            {
                "alert": alert,
                "expr": alert_expression(objective, alert),
                "labels": labels,
                "annotations": {"summary": summary, "description": description},
            }
        )
    return {"name": f"obskit-slo-{objective.name}", "rules": rules}


def load_all(sources: Sequence[str]) -> tuple[Objective, ...]:
    """The objectives of every source (see ``obskit._recording.slo.load``), each name once.

    A module is imported with the current directory on ``sys.path`` (``obskit rules --slo
    app.slos`` run from the project's root), as ``python -m`` would.

    Raises:
        ConfigError: a source that cannot be loaded, or one name given two different objectives.
    """
    from obskit._core.errors import ConfigError
    from obskit._recording.slo import load

    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    found: dict[str, Objective] = {}
    for source in sources:
        for objective in load(source):
            known = found.setdefault(objective.name, objective)
            if known != objective:
                raise ConfigError(
                    "slo",
                    objective.name,
                    "one objective per name",
                    message=f"SLO {objective.name!r} is declared twice with different values: at "
                    f"{known.source} and at {objective.source}",
                )
    return tuple(found.values())
