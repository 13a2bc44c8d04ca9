"""MetricsCollector: declare metrics once, record through handles, helpers for common families."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from obskit._core import state as _state
from obskit._core.errors import ConfigError, MetricDeclarationError
from obskit._core.settings import parse_histogram_buckets
from obskit._recording.families import call_specs
from obskit._recording.handles import Counter, Gauge, Histogram, declare, declare_spec
from obskit._recording.jobs import record_job
from obskit._recording.store import set_family_buckets

__all__ = ["MetricsCollector"]

_FAMILIES: dict[str, dict[str, Any]] = {}


class MetricsCollector:
    """A facade over obskit's metric store.

    Declare a metric once with its label names; the same name declared again returns the same
    handle, and a conflicting redeclaration raises :class:`obskit.MetricDeclarationError`.
    Record through the handle: ``counter.inc(**labels)``, ``histogram.observe(v, **labels)``,
    ``gauge.set(v, **labels)``, or a pre-bound child from ``handle.labels(**labels)`` on hot
    paths. Labels not declared are dropped with one warning (never a new series); each metric has
    a series cap past which values go to one overflow series, counted by
    ``obskit_telemetry_overflow_total{metric}``.

    Args:
        namespace: prefix (``<namespace>_``) for the names this collector declares; none by default.
        buckets: bucket bounds (seconds) of obskit's duration histograms, by family (``http``,
            ``db``, ``external_call``, ``job``), for the ready-made helpers; process-wide, applied
            to the metrics created after this call. The ``histogram_buckets`` setting wins over
            them. A family given other buckets before raises
            :class:`obskit.MetricDeclarationError`, as a bad family or bound does.
    """

    def __init__(
        self, namespace: str | None = None, *, buckets: Mapping[str, Sequence[float]] | None = None
    ) -> None:
        self._prefix = f"{namespace}_" if namespace else ""
        if buckets:
            try:
                checked = parse_histogram_buckets(dict(buckets))
            except ConfigError as error:
                raise MetricDeclarationError(
                    f"MetricsCollector(buckets=...): {error.hint}; allowed: {error.allowed}"
                ) from None
            set_family_buckets(checked)

    def counter(
        self, name: str, description: str = "", labels: Iterable[str] = (), unit: str = ""
    ) -> Counter:
        """Declare (or get) a counter. Its samples are named ``<name>_total``."""
        return declare("counter", self._prefix + name, description or name, labels, unit=unit)  # type: ignore[no-any-return]

    def histogram(
        self,
        name: str,
        description: str = "",
        labels: Iterable[str] = (),
        buckets: Sequence[float] | None = None,
        unit: str = "",
    ) -> Histogram:
        """Declare (or get) a histogram; ``buckets`` are upper bounds, honoured exactly."""
        return declare("histogram", self._prefix + name, description or name, labels, buckets, unit)  # type: ignore[no-any-return]

    def gauge(
        self,
        name: str,
        description: str = "",
        labels: Iterable[str] = (),
        unit: str = "",
        multiprocess_mode: str = "livesum",
    ) -> Gauge:
        """Declare (or get) a gauge.

        ``multiprocess_mode`` says how the workers' values combine in Prometheus multi-process
        mode (gunicorn, uwsgi): ``livesum`` (default: the sum over live workers, right for
        in-progress counts), ``liveall`` (one series per live worker, ``pid`` label), ``livemax``,
        ``livemin``, ``livemostrecent``, or the same without ``live`` to keep dead workers'
        last values. The ``mostrecent`` modes allow only ``set``.
        """
        full_name, mode = self._prefix + name, multiprocess_mode
        return declare("gauge", full_name, description or name, labels, unit=unit, multiprocess_mode=mode)  # type: ignore[no-any-return]

    # -- ready-made families ---------------------------------------------------------------------

    @staticmethod
    def _family(key: str) -> Any:
        namespace = _state.STATE.settings.metric_namespace
        handles = _FAMILIES.get(namespace)
        if handles is None:
            handles = _FAMILIES[namespace] = {k: declare_spec(s) for k, s in call_specs(namespace).items()}
        return handles[key]

    def http_request(self, method: str, route: str, status_code: int | str, duration: float) -> None:
        """Count one served request and observe its duration (seconds), labelled by route template."""
        method = method.upper()
        status = str(status_code)
        self._family("http_requests").inc(method=method, route=route, status_code=status)
        error_type = status if status[:1] == "5" and len(status) == 3 else ""  # as the middleware's
        self._family("http_duration").observe(duration, method=method, route=route, error_type=error_type)

    def cache_access(self, cache: str, hit: bool) -> None:
        """Count one cache lookup: ``<ns>_cache_requests_total{cache, result=hit|miss}``.

        Redis reads made through the instrumented ``redis`` library count here by themselves
        (``cache="redis"``; see ``instrument_libraries``).
        """
        self._family("cache").inc(cache=cache, result="hit" if hit else "miss")

    def db_call(self, operation: str, duration: float, db: str = "default", error: bool = False) -> None:
        """Observe one database call: ``<ns>_db_query_duration_seconds{db, operation, status}``.

        Queries made through an instrumented library (SQLAlchemy, psycopg, Redis; see
        ``instrument_libraries``) are observed here by themselves, ``db`` being the system.
        """
        self._family("db_duration").observe(
            duration, db=db, operation=operation, status="error" if error else "ok"
        )

    def external_call(
        self,
        service: str,
        operation: str,
        duration: float,
        error: bool = False,
        tokens: dict[str, float] | None = None,
    ) -> None:
        """Observe one call to another service (an LLM, an API), with optional token counts by kind.

        ``tokens={"prompt": 120, "completion": 30}`` adds to ``<ns>_external_call_tokens_total``.
        """
        self._family("external_duration").observe(
            duration, service=service, operation=operation, status="error" if error else "ok"
        )
        for kind, count in (tokens or {}).items():
            self._family("external_tokens").inc(count, service=service, operation=operation, kind=kind)

    def job(self, job: str, duration: float, error: bool = False) -> None:
        """Record one finished job in the ``track_job`` families without a span."""
        record_job(job, duration, error)
