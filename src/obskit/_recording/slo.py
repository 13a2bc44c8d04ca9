"""Service level objectives declared in code (``obskit.slo(...)``) or in a file (TOML or YAML).

An :class:`Objective` says which of obskit's series are the good and the bad events and what share
must be good over a period. Declaring one records nothing and starts nothing: ``obskit rules
--slo`` turns objectives into Prometheus rules (``obskit._cli._slo``), and ``obskit dashboard
--slo`` and ``obskit slo report`` show them. This module is imported only when an objective is
declared or loaded, never by ``import obskit``.

What each kind counts (the series obskit records, see docs/slo.md):

- ``availability``: HTTP requests answered 5xx (``status_code``) among all requests of a route.
- ``latency``: HTTP requests slower than a threshold, read from the duration histogram's buckets;
  the threshold must be one of its bucket bounds (the ``histogram_buckets`` setting may add one).
- ``job``: runs of a ``track_job`` job that raised, among all its finished runs.
- ``external``: calls to an external service recorded with ``error=True``, among all its calls.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import math
import os
import re
import sys
import threading
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias, cast

from obskit._core.errors import ConfigError, user_location

__all__ = ["KINDS", "Kind", "Objective", "declared", "http_bounds", "load", "slo"]

Kind: TypeAlias = Literal["availability", "latency", "job", "external"]
#: The kinds of objective, in the order the docs list them.
KINDS: Final = ("availability", "latency", "job", "external")
#: The file ``load()`` reads when given no source (in the current directory).
DEFAULT_SOURCE: Final = "obskit.toml"

_DURATION = re.compile(r"(?:\d+y)?(?:\d+w)?(?:\d+d)?(?:\d+h)?(?:\d+m)?(?:\d+s)?(?:\d+ms)?")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
#: The shortest period: a day (the burn-rate alerts look back up to 3 days; see docs/slo.md).
_MIN_WINDOW_SECONDS: Final = 86400
#: Label names the generated rules set or match themselves, by kind (an extra matcher may not repeat them).
_OWN_LABELS: Final = {
    "availability": ("route", "method", "status_code"),
    "latency": ("route", "method", "le"),
    "job": ("job_name", "status"),
    "external": ("service", "status"),
}
_RESERVED_LABELS: Final = frozenset({"slo", "slo_kind", "le", "alertname", "severity"})
#: The keys of one objective in a file: ``slo()``'s parameters.
_FILE_KEYS: Final = (
    "name", "objective", "route", "method", "job", "target", "latency_under", "window", "labels",
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Objective:
    """One service level objective: which events are bad, what share may be, over what period.

    ``objective`` is the share of good events required (0.999 is 99.9%) over ``window``, a
    Prometheus duration. The selectors narrow the events: ``route`` and ``method`` (HTTP),
    ``job`` (a ``track_job`` name), ``target`` (an external call's ``service``), ``labels``
    (more label matchers, such as the scrape ``job``). ``threshold`` is the latency kind's bound
    in seconds. ``source`` tells where it was declared (``file:line`` or a file), for errors.
    """

    name: str
    kind: Kind
    objective: float
    window: str = "30d"
    route: str | None = None
    method: str | None = None
    job: str | None = None
    target: str | None = None
    threshold: float | None = None
    labels: Mapping[str, str] = dataclasses.field(
        default_factory=lambda: types.MappingProxyType({}), hash=False
    )
    source: str = dataclasses.field(default="", compare=False)

    @property
    def budget(self) -> float:
        """The error budget: the share of events that may be bad (``1 - objective``, rounded)."""
        return float(f"{1 - self.objective:.12g}")


_registry: dict[str, Objective] = {}
_lock = threading.Lock()


def slo(
    name: str,
    *,
    objective: float,
    route: str | None = None,
    method: str | None = None,
    job: str | None = None,
    target: str | None = None,
    latency_under: float | None = None,
    window: str = "30d",
    labels: Mapping[str, str] | None = None,
) -> Objective:
    """Declare a service level objective; ``obskit rules --slo MODULE`` writes its rules.

    The kind follows from the selectors: ``job=`` a job's success ratio, ``target=`` an
    external service's call success ratio, ``latency_under=`` (seconds, a bucket bound of the
    HTTP duration histogram) the share of HTTP requests faster than it, otherwise the share
    of HTTP requests not answered 5xx (of ``route`` and ``method`` when given). Declaring the
    same name again with the same values returns the first; with others it raises.

    Raises:
        ConfigError: a value obskit cannot use, naming it and the values allowed.
    """
    filename, line = user_location()
    spec = build(
        name,
        objective=objective,
        route=route,
        method=method,
        job=job,
        target=target,
        latency_under=latency_under,
        window=window,
        labels=labels,
        source=f"{filename}:{line}",
    )
    with _lock:
        known = _registry.get(spec.name)
        if known is None:
            _registry[spec.name] = spec
            return spec
    if known != spec:
        raise ConfigError(
            "slo",
            name,
            "one declaration per name",
            message=f"SLO {name!r} is declared twice with different values: {_describe(known)} at "
            f"{known.source}, then {_describe(spec)} at {spec.source}",
        )
    return known


def declared() -> tuple[Objective, ...]:
    """The objectives ``obskit.slo()`` declared in this process, in declaration order."""
    with _lock:
        return tuple(_registry.values())


def _forget(names: object = None) -> None:
    """Forget declared objectives (all, or those named): for tests."""
    with _lock:
        if names is None:
            _registry.clear()
        else:
            for name in cast("tuple[str, ...]", names):
                _registry.pop(name, None)


def build(
    name: object,
    *,
    objective: object,
    route: object = None,
    method: object = None,
    job: object = None,
    target: object = None,
    latency_under: object = None,
    window: object = "30d",
    labels: object = None,
    source: str = "",
) -> Objective:
    """An :class:`Objective` from ``slo()``'s arguments (or a file's entry), validated; not registered."""
    where = f" (SLO at {source})" if source else ""
    if not isinstance(name, str) or not name.strip() or not name.isprintable():
        raise ConfigError("slo name", name, "a non-empty string without control characters", where.strip())
    where = f"SLO {name!r}" + (f" at {source}" if source else "")
    ratio = _objective(objective, where)
    selectors = {"route": route, "method": method, "job": job, "target": target}
    for key, value in selectors.items():
        if value is not None and (not isinstance(value, str) or not value or not value.isprintable()):
            raise ConfigError(key, value, "a non-empty string without control characters", where)
    kind: Kind
    others: tuple[str, ...] = ()
    if job is not None:
        kind, others = "job", ("route", "method", "target", "latency_under")
    elif target is not None:
        kind, others = "external", ("route", "method", "latency_under")
    else:
        kind = "availability" if latency_under is None else "latency"
    given = {**selectors, "latency_under": latency_under}
    for other in others:
        if given[other] is not None:
            chosen = "job" if kind == "job" else "target"
            raise ConfigError(
                other,
                given[other],
                f"nothing with {chosen}= (a {kind} objective)",
                f"{where}: route, method and latency_under select HTTP requests, job a job's runs,"
                " target an external service's calls; one kind per objective",
            )
    threshold = _threshold(latency_under, where) if kind == "latency" else None
    return Objective(
        name=name,
        kind=kind,
        objective=ratio,
        window=_window(window, where),
        route=cast("str | None", route),
        method=method.upper() if isinstance(method, str) else None,
        job=cast("str | None", job),
        target=cast("str | None", target),
        threshold=threshold,
        labels=_labels(labels, kind, where),
        source=source,
    )


def _objective(value: object, where: str) -> float:
    allowed = "a number above 0 and below 1, e.g. 0.999 for 99.9%"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError("objective", value, allowed, where)
    ratio = float(value)
    if not (math.isfinite(ratio) and 0 < ratio < 1):
        hint = f"{where}: a percentage is written as a ratio" if 1 < ratio < 100 else where
        raise ConfigError("objective", value, allowed, hint)
    return ratio


def _window(value: object, where: str) -> str:
    allowed = "a Prometheus duration of at least 1d, such as 30d (the default), 28d or 4w"
    if not isinstance(value, str) or not value.strip() or not _DURATION.fullmatch(value.strip()):
        raise ConfigError("window", value, allowed, where)
    text = value.strip()
    seconds = sum(int(n) * _UNITS[u] for n, u in re.findall(r"(\d+)(ms|[smhdwy])", text))
    if seconds < _MIN_WINDOW_SECONDS:
        raise ConfigError("window", value, allowed, where)
    return text


def _threshold(value: object, where: str) -> float:
    bounds = http_bounds()
    listed = ", ".join(f"{b:g}" for b in bounds)
    allowed = f"a bucket bound of the HTTP duration histogram, in seconds: {listed}"
    given = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan
    hint = f"{where}: the share of requests under a threshold is read from the histogram's buckets"
    if math.isfinite(given) and given > 0:
        with_it = ", ".join(f"{b:g}" for b in sorted({*bounds, given}))
        hint += (
            f"; to add {given:g}, set the histogram_buckets setting, e.g."
            f" OBSKIT_HISTOGRAM_BUCKETS='{{\"http\": [{with_it}]}}'"
        )
    if given not in bounds:
        raise ConfigError("latency_under", value, allowed, hint)
    return given


def http_bounds() -> tuple[float, ...]:
    """The HTTP duration histogram's bucket bounds as obskit records them in this process.

    The ``histogram_buckets`` setting (of ``configure()``, else of ``$OBSKIT_HISTOGRAM_BUCKETS``
    before it), else ``MetricsCollector(buckets=...)``, else the built-in bounds.
    """
    from obskit import environment_variables as env
    from obskit._core import state as _state
    from obskit._core.settings import parse_histogram_buckets
    from obskit._recording import store
    from obskit._recording.families import CALL_DURATION_BUCKETS

    state = _state.STATE
    if state.configured:
        chosen = state.settings.histogram_buckets.get("http")
    else:
        variable = os.environ.get(env.OBSKIT_HISTOGRAM_BUCKETS, "").strip()
        chosen = parse_histogram_buckets(variable).get("http") if variable else None
    return chosen or store._FAMILY_BUCKETS.get("http") or CALL_DURATION_BUCKETS


def _labels(value: object, kind: Kind, where: str) -> Mapping[str, str]:
    allowed = (
        'a mapping of label name to value, e.g. {"job": "api"}, with names other than '
        f"{', '.join(sorted({*_RESERVED_LABELS, *_OWN_LABELS[kind]}))}"
    )
    if value is None:
        return types.MappingProxyType({})
    if not isinstance(value, Mapping):
        raise ConfigError("labels", value, allowed, where)
    checked: dict[str, str] = {}
    for key, text in value.items():
        bad_name = not isinstance(key, str) or not _LABEL.fullmatch(key) or key.startswith("__")
        if bad_name or key in _RESERVED_LABELS or key in _OWN_LABELS[kind]:
            raise ConfigError("labels", value, allowed, f"{where}: not a label name here: {key!r}")
        if not isinstance(text, str) or not text.isprintable():
            raise ConfigError("labels", value, allowed, f"{where}: the value of {key!r}")
        checked[key] = text
    return types.MappingProxyType(dict(sorted(checked.items())))


def _describe(spec: Objective) -> str:
    fields = ("kind", "objective", "window", "route", "method", "job", "target", "threshold")
    shown = [f"{f}={getattr(spec, f)!r}" for f in fields if getattr(spec, f) is not None]
    if spec.labels:
        shown.append(f"labels={dict(spec.labels)!r}")
    return "(" + ", ".join(shown) + ")"


# -- loading ----------------------------------------------------------------------------------------


def load(source: str = DEFAULT_SOURCE) -> tuple[Objective, ...]:
    """The objectives of ``source``: a ``.toml`` or ``.yaml``/``.yml`` file, or a Python module.

    A TOML file holds ``[[slo]]`` tables (``obskit.toml`` may hold other tables too), a YAML
    file an ``slo:`` list, each entry with ``slo()``'s parameters as keys. A module (a dotted
    name, or a ``.py`` path) is imported, and the objectives its import declared returned.

    Raises:
        ConfigError: a file that cannot be read or parsed, an entry obskit cannot use, a module
            that cannot be imported or declares none; the message names the source.
    """
    text = source.strip()
    suffix = Path(text).suffix.lower()
    if suffix == ".toml":
        return _from_entries(text, _read_toml(text))
    if suffix in {".yaml", ".yml"}:
        return _from_entries(text, _read_yaml(text))
    return _from_module(text)


def _load_error(source: str, problem: str) -> ConfigError:
    allowed = "a .toml file with [[slo]] tables, a .yaml file with an slo: list, or a Python module"
    return ConfigError("slo source", source, allowed, message=f"cannot load SLOs from {source}: {problem}")


def _read(source: str) -> str:
    try:
        return Path(source).read_text(encoding="utf-8")
    except OSError as error:
        raise _load_error(source, error.strerror or str(error)) from None
    except UnicodeDecodeError as error:
        raise _load_error(source, f"not UTF-8 text ({error.reason})") from None


def _read_toml(source: str) -> Any:
    import tomllib

    try:
        document = tomllib.loads(_read(source))
    except tomllib.TOMLDecodeError as error:
        raise _load_error(source, f"not TOML: {error}") from None
    return document.get("slo", [])


def _read_yaml(source: str) -> Any:
    try:
        import yaml  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        raise _load_error(
            source, "reading YAML needs PyYAML, which is not installed: pip install pyyaml"
        ) from None
    try:
        document = yaml.safe_load(_read(source))
    except yaml.YAMLError as error:
        raise _load_error(source, f"not YAML: {error}") from None
    if document is None:
        return []
    if isinstance(document, Mapping):
        return document.get("slo", [])
    return document


def _from_entries(source: str, entries: Any) -> tuple[Objective, ...]:
    if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
        raise _load_error(source, "'slo' must be a list of tables (TOML [[slo]]) or mappings (YAML)")
    if not entries:
        raise _load_error(source, "it holds no objective (TOML: [[slo]] tables; YAML: an slo: list)")
    found: dict[str, Objective] = {}
    for number, entry in enumerate(entries, 1):
        where = f"{source}, slo #{number}"
        unknown = sorted(set(entry) - set(_FILE_KEYS))
        if unknown:
            raise _load_error(
                source, f"slo #{number}: unknown key {unknown[0]!r}; keys: {', '.join(_FILE_KEYS)}"
            )
        missing = [key for key in ("name", "objective") if key not in entry]
        if missing:
            raise _load_error(source, f"slo #{number}: {missing[0]!r} is required")
        spec = build(**{key: entry[key] for key in _FILE_KEYS if key in entry}, source=where)
        if spec.name in found:
            raise _load_error(source, f"slo #{number}: the name {spec.name!r} is used twice")
        found[spec.name] = spec
    return tuple(found.values())


def _from_module(source: str) -> tuple[Objective, ...]:
    before = set(declared())
    path = Path(source)
    try:
        if source.endswith(".py"):
            if not path.is_file():
                raise _load_error(source, "no such file")
            # Run afresh at each load (a file is no package module: nothing else imports it).
            module_name = "_obskit_slo_" + re.sub(r"\W", "_", path.stem)
            file_name = str(path.resolve())
            spec = importlib.util.spec_from_file_location(module_name, path)
            if spec is None or spec.loader is None:
                raise _load_error(source, "not a Python file")
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
        else:
            if not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*", source):
                raise _load_error(source, "not a .toml, .yaml or .yml file, a .py file or a module name")
            module = importlib.import_module(source)
            file_name = (
                str(Path(module.__file__ or "").resolve()) if getattr(module, "__file__", None) else ""
            )
    except ConfigError:
        raise
    except Exception as error:  # the module's own failure: show it, whatever it is
        raise _load_error(source, f"importing it raised {type(error).__name__}: {error}") from error
    found = [s for s in declared() if s not in before or (file_name and _source_file(s) == file_name)]
    if not found:
        raise _load_error(source, "it declares no objective (call obskit.slo(...) at its top level)")
    return tuple(found)


def _source_file(spec: Objective) -> str:
    file_name = spec.source.rpartition(":")[0]
    return str(Path(file_name).resolve()) if file_name else ""
