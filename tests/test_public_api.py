"""The public surface: __all__, docstrings, version, error hierarchy."""

from __future__ import annotations

import importlib.metadata
import inspect
import subprocess
import sys
from types import ModuleType
from typing import Any

import pytest

import obskit
import obskit.environment_variables
import obskit.logging
import obskit.testing

PUBLIC_MODULES = [obskit, obskit.testing, obskit.logging]


def _public_names(module: ModuleType) -> list[str]:
    return list(module.__all__)


def _own_members(cls: type) -> list[tuple[str, Any]]:
    """Public attributes defined on ``cls`` or on obskit base classes of it (private bases included)."""
    members: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if klass.__module__.split(".")[0] == "obskit":
            members.update((n, v) for n, v in vars(klass).items() if not n.startswith("_"))
    return list(members.items())


def _documented(obj: Any) -> bool:
    if isinstance(obj, staticmethod | classmethod):
        obj = obj.__func__
    doc = obj.__doc__ if not isinstance(obj, property) else obj.fget.__doc__
    return bool(doc and doc.strip())


def test_all_is_sorted_and_unique() -> None:
    assert list(obskit.__all__) == sorted(obskit.__all__)
    assert len(set(obskit.__all__)) == len(obskit.__all__)


def test_all_is_complete_every_public_name_of_obskit_is_in_it() -> None:
    # dir(), not vars(): some names are imported on first use (obskit.__getattr__).
    public = {name for name in dir(obskit) if not name.startswith("_")}
    submodules = {name for name in public if isinstance(getattr(obskit, name), ModuleType)}
    assert public - submodules == set(obskit.__all__)


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda m: m.__name__)
def test_every_name_in_all_exists(module: ModuleType) -> None:
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []


def test_documented_entry_points_are_exported() -> None:
    expected = {
        "configure",
        "shutdown",
        "is_configured",
        "track_job",
        "trace_operation",
        "LoggingContext",
        "MetricsCollector",
        "get_logger",
        "Settings",
        "ConfigError",
        "MetricDeclarationError",
        "MetricUsageError",
        "ObskitError",
    }
    assert expected <= set(obskit.__all__)


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda m: m.__name__)
def test_every_public_callable_has_a_docstring(module: ModuleType) -> None:
    undocumented = []
    for name in module.__all__:
        obj = getattr(module, name)
        if not callable(obj):
            continue
        if not _documented(obj):
            undocumented.append(f"{module.__name__}.{name}")
        if inspect.isclass(obj):
            for member_name, member in _own_members(obj):
                if (
                    callable(member) or isinstance(member, property | staticmethod | classmethod)
                ) and not _documented(member):
                    undocumented.append(f"{module.__name__}.{name}.{member_name}")
    assert undocumented == []


def test_modules_have_docstrings() -> None:
    for module in [*PUBLIC_MODULES, obskit.environment_variables]:
        assert (module.__doc__ or "").strip(), module.__name__


def test_version_matches_installed_metadata() -> None:
    assert obskit.__version__ == importlib.metadata.version("obskit")


def test_errors_share_one_base_and_are_value_errors() -> None:
    for error in (obskit.ConfigError, obskit.MetricDeclarationError, obskit.MetricUsageError):
        assert issubclass(error, obskit.ObskitError)
        assert issubclass(error, ValueError)
    assert issubclass(obskit.ObskitError, Exception)


def test_metric_handle_types_are_what_the_collector_returns() -> None:
    collector = obskit.MetricsCollector()
    assert isinstance(collector.counter("public_api_probe_events"), obskit.Counter)
    assert isinstance(collector.histogram("public_api_probe_latency"), obskit.Histogram)
    assert isinstance(collector.gauge("public_api_probe_depth"), obskit.Gauge)


def test_configure_signature_names_every_setting_in_its_docstring() -> None:
    import dataclasses

    doc = obskit.configure.__doc__ or ""
    for field in dataclasses.fields(obskit.Settings):
        assert field.name in doc, field.name


def test_decorators_keep_metadata() -> None:
    def documented(x: int) -> int:
        """Doubles."""
        return 2 * x

    for decorator in (obskit.trace_operation("meta"), obskit.track_job("meta")):
        wrapped = decorator(documented)
        assert wrapped.__doc__ == "Doubles."
        assert wrapped.__name__ == "documented"
        assert inspect.signature(wrapped) == inspect.signature(documented)


def test_submodules_are_reachable_after_a_plain_import_without_being_imported_by_it() -> None:
    code = (
        "import sys, obskit\n"
        "lazy = ('asgi', 'health', 'prometheus', 'testing', 'wsgi')\n"
        "assert not [m for m in lazy if f'obskit.{m}' in sys.modules], sys.modules.keys()\n"
        "assert callable(obskit.testing.capture) and callable(obskit.health.register)\n"
        "assert 'obskit.testing' in sys.modules\n"
        "try:\n"
        "    obskit.nope\n"
        "except AttributeError as error:\n"
        "    assert 'nope' in str(error)\n"
        "else:\n"
        "    raise SystemExit('obskit.nope did not raise')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
