"""``obskit doctor``: the settings ``configure()`` would use, where each came from, and the backend checks.

Exit status: 0 when the chosen backends can work, 1 when :func:`obskit.check_backends` found
problems, 2 when a setting has a value obskit refuses (the :class:`obskit.ConfigError` message,
naming the setting and what it allows, is printed). Secrets are never printed: connection-string
keys, OTLP header values, URL passwords and anything obskit's redaction list matches are shown
as ``[REDACTED]``, in the table and in every message.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["register", "run"]

#: Per-signal OTLP overrides: listed only when set (or with ``--all``), since they are rarely used.
_PER_SIGNAL = ("otlp_traces_", "otlp_metrics_", "otlp_logs_")


def _override(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def register(subparsers: Any) -> None:
    """Add the ``doctor`` subcommand."""
    parser = subparsers.add_parser(
        "doctor",
        help="show the resolved settings and where each came from; check the backends",
        description="Resolve the settings exactly as obskit.configure() would (keyword > environment "
        "variable > default), show each with its source, secrets masked, then run "
        "obskit.check_backends(): extras installed, endpoints reachable, scrape port free. "
        "With --app, also check that the app does not serve obskit's scrape or health paths itself. "
        "Exit 0 when all is well, 1 when problems were found, 2 on an invalid setting.",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    parser.add_argument(
        "--set",
        dest="overrides",
        type=_override,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a configure() keyword, as if passed in code (repeatable): --set metrics_exporter=prometheus",
    )
    parser.add_argument(
        "--all", action="store_true", help="also list the per-signal OTLP settings that are unset"
    )
    parser.add_argument(
        "--app",
        metavar="MODULE:ATTRIBUTE",
        help="also check that this app (imported as uvicorn imports it: myservice.main:app) does not "
        "serve obskit's scrape or health paths itself; importing it runs its module",
    )
    parser.set_defaults(run=run)


def sources(overrides: Mapping[str, object], environ: Mapping[str, str]) -> dict[str, str]:
    """Where each setting's value comes from: ``keyword``, ``$VARIABLE`` or ``default``."""
    from obskit import environment_variables as env
    from obskit._core import settings as _settings

    found: dict[str, str] = {}
    for name, (variables, _) in _settings._FIELDS.items():
        if overrides.get(name) is not None:
            found[name] = "keyword"
            continue
        variable = next((v for v in variables if environ.get(v, "").strip()), None)
        found[name] = f"${variable}" if variable else "default"
    sampler = str(overrides.get("sampler") or environ.get(env.OTEL_TRACES_SAMPLER, "")).strip().lower()
    if found["sampling_ratio"] == "default" and _settings._sampler_ratio(environ, sampler):
        found["sampling_ratio"] = f"${env.OTEL_TRACES_SAMPLER_ARG}"
    attributes = environ.get(env.OTEL_RESOURCE_ATTRIBUTES, "")
    for name, keys in (
        ("service_name", ("service.name",)),
        ("service_version", ("service.version",)),
        ("environment", ("deployment.environment.name", "deployment.environment")),
    ):
        given = [k for k in keys if f"{k}=" in attributes.replace(" ", "")]
        if found[name] == "default" and given:
            found[name] = f"${env.OTEL_RESOURCE_ATTRIBUTES} ({given[0]})"
    return found


def _text_value(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items()) or "(none)"
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "(none)"
    return str(value)


def _report(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    """Resolve, mask and check; (exit status, the report as a JSON-able dict)."""
    import obskit
    from obskit._cli import _mask
    from obskit._core.redact import redactor_for
    from obskit._core.settings import rejected_settings, resolve_settings

    overrides = dict(args.overrides)
    try:
        settings = resolve_settings(overrides)
    except obskit.ConfigError as error:  # secret values are already hidden in it (_settings)
        return 2, {"ok": False, "error": str(error), "setting": error.setting}
    redactor = redactor_for(settings)
    secrets: set[str] = set()
    origin = sources(overrides, os.environ)
    for name in rejected_settings(settings):  # an invalid value no chosen backend uses: the default stands
        origin[name] = f"default ({origin[name]} invalid, ignored)"
    shown = {
        name: {"value": _mask.setting_value(name, getattr(settings, name), redactor, secrets), "source": src}
        for name, src in origin.items()
    }
    found = obskit.check_backends(settings)
    if args.app:
        try:
            found += [p for p in _app_problems(args.app, settings) if p not in found]
        except Exception as error:
            return 2, {"ok": False, "error": f"--app {args.app}: {error!r}", "setting": None}
    problems = [_mask.scrub(p, secrets) for p in found]
    exporters = {s: list(getattr(settings, f"{s}_exporter")) for s in ("traces", "metrics", "logs")}
    report = {"ok": not problems, "exporters": exporters, "settings": shown, "problems": problems}
    return (1 if problems else 0), report


def _app_problems(target: str, settings: Any) -> list[str]:
    """The endpoints of obskit that the app ``module:attribute`` serves itself.

    When importing the module configured obskit, the settings it configured decide the paths.
    """
    import importlib

    import obskit
    from obskit._core import state as _state
    from obskit._runtime.doctor import endpoints_not_shadowed

    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ValueError("expected MODULE:ATTRIBUTE, e.g. myservice.main:app")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    app: Any = importlib.import_module(module_name)
    for name in attribute.split("."):
        app = getattr(app, name)
    if obskit.is_configured():
        settings = _state.STATE.settings
    return endpoints_not_shadowed(settings, app)


def _print_text(report: dict[str, Any], show_all: bool) -> None:
    out = sys.stdout
    if "error" in report:
        print(f"obskit doctor: {report['error']}", file=sys.stderr)
        return
    rows = [
        (name, _text_value(item["value"]), item["source"])
        for name, item in report["settings"].items()
        if show_all or item["value"] is not None or not name.startswith(_PER_SIGNAL)
    ]
    width = max(len(r[0]) for r in rows)
    value_width = min(48, max(len(r[1]) for r in rows))
    print("Settings, as obskit.configure() would resolve them (keyword > environment > default):", file=out)
    for name, value, source in rows:
        marker = " " if source == "default" else "*"
        print(f" {marker} {name:<{width}}  {value:<{value_width}}  {source}", file=out)
    print("   (* not the default)", file=out)
    chosen = "; ".join(f"{s} {','.join(names) or 'none'}" for s, names in report["exporters"].items())
    print(f"\nBackends: {chosen}", file=out)
    if not report["problems"]:
        print("All checks passed: extras installed, endpoints reachable, scrape port free.", file=out)
        return
    count = len(report["problems"])
    print(f"{count} problem{'s' if count > 1 else ''} found:", file=out)
    for problem in report["problems"]:
        print(f"  - {problem}", file=out)


def run(args: argparse.Namespace) -> int:
    """Print the resolved settings and the backend checks; 0 all well, 1 problems, 2 invalid setting."""
    status, report = _report(args)
    if args.format == "json":
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
        if "error" in report:
            print(f"obskit doctor: {report['error']}", file=sys.stderr)
    else:
        _print_text(report, args.all)
    return status
