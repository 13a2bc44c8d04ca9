"""SLOs as code: ``obskit.slo()``, objectives in files and modules, and ``obskit rules --slo``.

What the rules do when Prometheus evaluates them is in tests/test_slo_promtool.py.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import obskit
from obskit import _cli
from obskit._cli import _promql, _slo, rules
from obskit._core.errors import ConfigError
from obskit._recording import slo

FAMILIES = _promql.families("obskit")
PROMTOOL = shutil.which("promtool")


@pytest.fixture(autouse=True)
def _keep_declared() -> Iterator[None]:
    """Each test starts with no objective declared and leaves none behind."""
    before = dict(slo._registry)
    slo._registry.clear()
    yield
    slo._registry.clear()
    slo._registry.update(before)


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# -- declaring in code ----------------------------------------------------------------------------


def test_the_kind_follows_from_the_selectors() -> None:
    checkout = obskit.slo("checkout", objective=0.999, route="/checkout")
    export = obskit.slo("nightly_export", objective=0.99, job="nightly_export")
    search = obskit.slo("search", objective=0.99, route="/search", method="get", latency_under=0.25)
    llm = obskit.slo("llm", objective=0.995, target="openai", window="28d", labels={"job": "api"})
    assert (checkout.kind, export.kind, search.kind, llm.kind) == (
        "availability",
        "job",
        "latency",
        "external",
    )
    assert checkout.window == "30d"
    assert checkout.route == "/checkout"
    assert checkout.threshold is None
    assert search.threshold == 0.25
    assert search.method == "GET"
    assert llm.target == "openai"
    assert llm.window == "28d"
    assert dict(llm.labels) == {"job": "api"}
    assert (
        checkout.source
        == f"{__file__}:{test_the_kind_follows_from_the_selectors.__code__.co_firstlineno + 1}"
    )
    assert slo.declared() == (checkout, export, search, llm)
    assert checkout.budget == 0.001  # 1 - 0.999, rounded (not 0.0010000000000000009)


def test_declaring_again_returns_the_first_or_raises_when_different() -> None:
    first = obskit.slo("checkout", objective=0.999, route="/checkout")
    assert obskit.slo("checkout", objective=0.999, route="/checkout") is first
    twice = (
        r"SLO 'checkout' is declared twice with different values: .*"
        r"objective=0\.999.* at .*test_slo\.py:\d+, then .*objective=0\.99,.* at "
    )
    with pytest.raises(ConfigError, match=twice):
        obskit.slo("checkout", objective=0.99, route="/checkout")
    assert slo.declared() == (first,)


@pytest.mark.parametrize("value", [0, 1, 1.5, -0.1, float("nan"), "0.99", True, None])
def test_objective_is_a_ratio_between_0_and_1(value: Any) -> None:
    with pytest.raises(ConfigError, match=r"invalid value for objective: .*; allowed: a number above 0 and "
                       r"below 1, e\.g\. 0\.999 for 99\.9%\. SLO 'checkout' at .*test_slo\.py"):  # fmt: skip
        obskit.slo("checkout", objective=value)
    assert slo.declared() == ()


def test_a_percentage_for_an_objective_is_explained() -> None:
    with pytest.raises(ConfigError, match="a percentage is written as a ratio"):
        obskit.slo("checkout", objective=99.9)


def test_a_latency_threshold_must_be_a_bucket_bound() -> None:
    with pytest.raises(ConfigError) as caught:
        obskit.slo("search", objective=0.99, route="/search", latency_under=0.3)
    message = str(caught.value)
    assert message.startswith("invalid value for latency_under: 0.3; allowed: a bucket bound of the HTTP ")
    assert (
        "in seconds: 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120. SLO 'search' at "
        in message
    )
    assert message.endswith(
        "read from the histogram's buckets; to add 0.3, set the histogram_buckets setting, e.g. "
        """OBSKIT_HISTOGRAM_BUCKETS='{"http": [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.3, 0.5, 1, 2.5, """
        "5, 10, 30, 60, 120]}'"
    )


def test_the_histogram_buckets_setting_adds_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OBSKIT_HISTOGRAM_BUCKETS", '{"http": [0.1, 0.3, 1]}')
    assert obskit.slo("search", objective=0.99, latency_under=0.3).threshold == 0.3
    with pytest.raises(ConfigError, match=r"seconds: 0\.1, 0\.3, 1\."):
        obskit.slo("search_fast", objective=0.99, latency_under=0.25)


def test_configure_s_histogram_buckets_are_the_bounds() -> None:
    obskit.configure(
        service_name="shop", histogram_buckets={"http": [0.3, 3]}, traces_exporter="none",
        metrics_exporter="none", logs_exporter="none",
    )  # fmt: skip
    assert slo.http_bounds() == (0.3, 3.0)
    assert obskit.slo("search", objective=0.99, latency_under=3).threshold == 3.0


@pytest.mark.parametrize(
    ("keywords", "named"),
    [
        ({"job": "export", "route": "/x"}, "route"),
        ({"job": "export", "target": "openai"}, "target"),
        ({"target": "openai", "latency_under": 0.25}, "latency_under"),
        ({"target": "openai", "method": "GET"}, "method"),
    ],
)
def test_one_kind_per_objective(keywords: dict[str, Any], named: str) -> None:
    expected = (
        rf"invalid value for {named}: .*; allowed: nothing with "
        r"(job|target)= \(a (job|external) objective\)\. .*one kind per objective"
    )
    with pytest.raises(ConfigError, match=expected):
        obskit.slo("x", objective=0.99, **keywords)


@pytest.mark.parametrize("window", ["1h", "23h", "30 days", "", "thirty", 30])
def test_window_is_a_duration_of_a_day_or_more(window: Any) -> None:
    expected = (
        r"invalid value for window: .*; allowed: a Prometheus duration of at "
        r"least 1d, such as 30d \(the default\), 28d or 4w"
    )
    with pytest.raises(ConfigError, match=expected):
        obskit.slo("x", objective=0.99, window=window)


@pytest.mark.parametrize(
    ("name", "keywords"),
    [("", {}), ("a\nb", {}), (None, {}), ("x", {"route": ""}), ("x", {"job": 3}),
     ("x", {"labels": {"le": "1"}}), ("x", {"labels": {"slo": "1"}}), ("x", {"labels": {"__name__": "a"}}),
     ("x", {"labels": {"route": "/y"}}), ("x", {"job": "j", "labels": {"job_name": "k"}}),
     ("x", {"labels": {"job": 1}}), ("x", {"labels": "job=api"})],
)  # fmt: skip
def test_names_selectors_and_labels_are_checked(name: Any, keywords: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="invalid value for "):
        obskit.slo(name, objective=0.99, **keywords)


def test_import_obskit_leaves_the_slo_module_unimported() -> None:
    code = (
        "import sys, obskit; assert 'obskit._recording.slo' not in sys.modules;"
        " assert obskit.slo('x', objective=0.9).kind == 'availability'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# -- loading from files and modules ---------------------------------------------------------------


TOML = """\
    [tool.other]
    ignored = true

    [[slo]]
    name = "checkout"
    objective = 0.999
    route = "/checkout"

    [[slo]]
    name = "search"
    objective = 0.99
    route = "/search"
    latency_under = 0.25
    window = "28d"
    labels = { job = "shop" }
"""


def test_load_reads_toml_slo_tables(tmp_path: Path) -> None:
    path = write(tmp_path / "slos.toml", TOML)
    checkout, search = slo.load(str(path))
    assert (checkout.name, checkout.kind, checkout.objective, checkout.route) == (
        "checkout", "availability", 0.999, "/checkout"
    )  # fmt: skip
    assert (search.kind, search.threshold, search.window, dict(search.labels)) == (
        "latency", 0.25, "28d", {"job": "shop"}
    )  # fmt: skip
    assert checkout.source == f"{path}, slo #1"
    assert slo.declared() == ()  # loading declares nothing in the process


def test_load_reads_obskit_toml_in_the_current_directory_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "obskit.toml", TOML)
    monkeypatch.chdir(tmp_path)
    assert [o.name for o in slo.load()] == ["checkout", "search"]


def test_load_reads_a_yaml_slo_list(tmp_path: Path) -> None:
    path = write(
        tmp_path / "slos.yaml",
        """\
        slo:
          - name: nightly_export
            objective: 0.99
            job: nightly_export
          - {name: llm, objective: 0.995, target: openai}
        """,
    )
    export, llm = slo.load(str(path))
    assert (export.kind, export.job, llm.kind, llm.target) == ("job", "nightly_export", "external", "openai")


def test_yaml_without_pyyaml_names_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "slos.yml", "slo: []\n")
    monkeypatch.setitem(sys.modules, "yaml", None)  # import yaml raises ImportError
    with pytest.raises(
        ConfigError, match=r"reading YAML needs PyYAML, which is not installed: pip install pyyaml"
    ):
        slo.load(str(path))


def test_load_imports_a_module_and_returns_what_it_declared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "shop_slos_pkg"
    package.mkdir()
    write(package / "__init__.py", "")
    write(
        package / "slos.py",
        """\
        import obskit

        obskit.slo("checkout", objective=0.999, route="/checkout")
        obskit.slo("nightly_export", objective=0.99, job="nightly_export")
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "shop_slos_pkg.slos", raising=False)
    obskit.slo("elsewhere", objective=0.9)
    found = slo.load("shop_slos_pkg.slos")
    assert [o.name for o in found] == ["checkout", "nightly_export"]
    assert slo.load("shop_slos_pkg.slos") == found  # already imported: found by their source file
    assert [o.name for o in slo.load(str(package / "slos.py"))] == ["checkout", "nightly_export"]


@pytest.mark.parametrize(
    ("file", "text", "problem"),
    [
        ("a.toml", "[[slo]]\nname = 'x'\nobjective = 0.9\nobjectve = 1\n",
         "slo #1: unknown key 'objectve'; keys: name,"),
        ("a.toml", "[[slo]]\nname = 'x'\n", "slo #1: 'objective' is required"),
        ("a.toml", "[[slo]\n", "not TOML: "),
        ("a.toml", "slo = 3\n", "'slo' must be a list of tables"),
        ("a.toml", "[[slo]]\nname='x'\nobjective=0.9\n[[slo]]\nname='x'\nobjective=0.9\n",
         "slo #2: the name 'x' is used twice"),
        ("a.toml", "[tool.other]\nx = 1\n", "it holds no objective (TOML: [[slo]] tables; YAML: an slo:"),
        ("a.yaml", "", "it holds no objective"),
        ("a.yaml", "slo: [1, 2]\n", "'slo' must be a list"),
        ("a.yaml", "slo: [\n", "not YAML: "),
        ("a.py", "x = 1\n", "it declares no objective"),
        ("a.py", "raise RuntimeError('boom')\n", "importing it raised RuntimeError: boom"),
    ],
)  # fmt: skip
def test_a_source_that_cannot_be_loaded_says_why(tmp_path: Path, file: str, text: str, problem: str) -> None:
    path = tmp_path / file
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=f"cannot load SLOs from {path}: ") as caught:
        slo.load(str(path))
    assert problem in str(caught.value)


def test_a_bad_entry_in_a_file_names_the_file_and_entry(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.toml", "[[slo]]\nname = 'x'\nobjective = 0.9\n[[slo]]\nname = 'y'\nobjective = 2\n"
    )
    with pytest.raises(ConfigError, match=rf"invalid value for objective: 2; .* SLO 'y' at {path}, slo #2"):
        slo.load(str(path))


@pytest.mark.parametrize("source", ["missing.toml", "missing.py", "no_such_module_here", "not a module"])
def test_a_missing_source_is_reported(source: str) -> None:
    with pytest.raises(ConfigError, match=f"cannot load SLOs from {source}: "):
        slo.load(source)


# -- obskit rules --slo ---------------------------------------------------------------------------


def document(*options: str) -> dict[str, Any]:
    return rules.document(_cli.build_parser().parse_args(["rules", *options]), "obskit")


def slo_groups(*options: str) -> dict[str, list[dict[str, Any]]]:
    return {
        g["name"]: g["rules"] for g in document(*options)["groups"] if g["name"].startswith("obskit-slo-")
    }


@pytest.fixture
def source(tmp_path: Path) -> str:
    return str(
        write(
            tmp_path / "slos.toml",
            """\
            [[slo]]
            name = "checkout"
            objective = 0.999
            route = "/checkout"

            [[slo]]
            name = "llm"
            objective = 0.995
            target = "openai"
            window = "28d"
            """,
        )
    )


def test_without_slo_no_slo_group_is_written() -> None:
    assert [g["name"] for g in document()["groups"]] == ["obskit.recording", "obskit.alerts"]


def test_each_objective_gets_a_group_of_recording_rules_and_two_alerts(source: str) -> None:
    groups = slo_groups("--slo", source)
    assert list(groups) == ["obskit-slo-checkout", "obskit-slo-llm"]
    llm = groups["obskit-slo-llm"]
    windows = ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "28d")
    assert [r.get("record") or r["alert"] for r in llm] == [
        *(f"obskit_slo:sli_error:ratio_rate{w}" for w in windows),
        "obskit_slo:objective:ratio",
        *(f"obskit_slo:burn_rate:rate{w}" for w in windows),
        "obskit_slo:error_budget_remaining:ratio",
        "SLOBurnRatePage",
        "SLOBurnRateTicket",
    ]
    assert all(r["labels"]["slo"] == "llm" and r["labels"]["slo_kind"] == "external" for r in llm)
    by_name = {r.get("record") or r["alert"]: r for r in llm}
    assert by_name["obskit_slo:objective:ratio"]["expr"] == "vector(0.995)"
    assert (
        by_name["obskit_slo:burn_rate:rate1h"]["expr"]
        == 'obskit_slo:sli_error:ratio_rate1h{slo="llm"} / 0.005'
    )
    assert by_name["obskit_slo:error_budget_remaining:ratio"]["expr"] == (
        '1 - obskit_slo:sli_error:ratio_rate28d{slo="llm"} / 0.005'
    )
    assert by_name["SLOBurnRatePage"]["expr"] == (
        '(\n  obskit_slo:burn_rate:rate1h{slo="llm"} > 14.4\n    and\n'
        '  obskit_slo:burn_rate:rate5m{slo="llm"} > 14.4\n)\nor\n'
        '(\n  obskit_slo:burn_rate:rate6h{slo="llm"} > 6\n    and\n'
        '  obskit_slo:burn_rate:rate30m{slo="llm"} > 6\n)'
    )
    assert by_name["SLOBurnRateTicket"]["labels"] == {
        "severity": "warning",
        "slo": "llm",
        "slo_kind": "external",
    }
    assert "for" not in by_name["SLOBurnRatePage"]  # the short window does what a for: would, sooner


def test_the_alert_table_is_the_workbook_s() -> None:
    assert _slo.ALERT_TABLE == (
        ("SLOBurnRatePage", 14.4, "1h", "5m"),
        ("SLOBurnRatePage", 6.0, "6h", "30m"),
        ("SLOBurnRateTicket", 3.0, "1d", "2h"),
        ("SLOBurnRateTicket", 1.0, "3d", "6h"),
    )
    assert _slo.WINDOWS == ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
    assert {w for _, _, long, short in _slo.ALERT_TABLE for w in (long, short)} <= set(_slo.WINDOWS)
    assert set(_slo.ALERTS) <= set(rules.ALERTS)


def test_severity_and_labels_options_apply_to_the_slo_alerts(source: str) -> None:
    groups = slo_groups(
        "--slo", source, "--severity", "SLOBurnRatePage=warning", "--severity", "SLOBurnRateTicket=info",
        "--label", "team=payments", "--label", "SLOBurnRatePage:pager=oncall",
    )  # fmt: skip
    alerts = {r["alert"]: r["labels"] for r in groups["obskit-slo-checkout"] if "alert" in r}
    identity = {"slo": "checkout", "slo_kind": "availability"}
    assert alerts == {
        "SLOBurnRatePage": {"severity": "warning", "team": "payments", "pager": "oncall", **identity},
        "SLOBurnRateTicket": {"severity": "info", "team": "payments", **identity},
    }


def ratio(**keywords: Any) -> str:
    return _slo.error_ratio(slo.build("x", objective=0.99, **keywords), "1h", FAMILIES)


def test_the_bad_events_of_each_kind() -> None:
    assert ratio(route="/checkout", method="POST") == (
        '(\n  sum(rate(http_server_requests_total{route="/checkout",method="POST",status_code=~"5.."}[1h]))'
        "\n    or\n"
        '  sum(rate(http_server_requests_total{route="/checkout",method="POST"}[1h])) * 0\n)\n  /\n'
        '(sum(rate(http_server_requests_total{route="/checkout",method="POST"}[1h])) > 0)'
    )
    count = 'sum(rate(obskit_http_server_request_duration_seconds_count{route="/s",method!="WS"}[1h]))'
    fast = (
        'sum(rate(obskit_http_server_request_duration_seconds_bucket{route="/s",method!="WS",le="0.25"}[1h]))'
    )
    assert ratio(route="/s", latency_under=0.25) == f"(\n  {count}\n    -\n  {fast}\n)\n  /\n({count} > 0)"
    assert 'le=~"1\\\\.0|1"' in ratio(latency_under=1)
    job = ratio(job="nightly_export", labels={"job": "worker"})
    assert 'obskit_jobs_total{job_name="nightly_export",job="worker",status="error"}[1h]' in job
    external = ratio(target="openai")
    assert 'obskit_external_call_duration_seconds_count{service="openai",status="error"}[1h]' in external


def test_selector_and_job_label_options_reach_the_slo_series(tmp_path: Path) -> None:
    path = write(tmp_path / "a.toml", "[[slo]]\nname = 'export'\nobjective = 0.99\njob = 'export'\n")
    groups = slo_groups("--slo", str(path), "--selector", 'env="prod"', "--job-label", "task")
    expr = groups["obskit-slo-export"][0]["expr"]
    assert 'obskit_jobs_total{task="export",env="prod",status="error"}[5m]' in expr


def test_awkward_names_are_quoted_in_promql_and_yaml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path / "a.toml", "[[slo]]\nname = 'pay \"now\" \\ ü'\nobjective = 0.99\nroute = '/a\"b'\n"
    )
    output = tmp_path / "rules.yml"
    assert _cli.main(["rules", "--slo", str(path), "-o", str(output)]) == 0
    text = output.read_text(encoding="utf-8")
    if PROMTOOL is not None:
        checked = subprocess.run(
            [PROMTOOL, "check", "rules", str(output)], capture_output=True, text=True, check=False
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
    group = yaml.safe_load(text)["groups"][2]
    assert group["name"] == 'obskit-slo-pay "now" \\ ü'
    assert group["rules"][0]["labels"]["slo"] == 'pay "now" \\ ü'
    assert 'route="/a\\"b"' in group["rules"][0]["expr"]
    assert 'obskit_slo:burn_rate:rate1h{slo="pay \\"now\\" \\\\ ü"} > 14.4' in group["rules"][-2]["expr"]


def test_slo_without_a_source_reads_obskit_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    (tmp_path / "obskit.toml").write_text(Path(source).read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert list(slo_groups("--slo")) == ["obskit-slo-checkout", "obskit-slo-llm"]


def test_sources_are_merged_and_a_name_given_two_objectives_is_refused(tmp_path: Path, source: str) -> None:
    other = write(tmp_path / "b.toml", "[[slo]]\nname = 'search'\nobjective = 0.99\n")
    assert list(slo_groups("--slo", source, "--slo", str(other), "--slo", source)) == [
        "obskit-slo-checkout", "obskit-slo-llm", "obskit-slo-search"
    ]  # fmt: skip
    clash = write(tmp_path / "c.toml", "[[slo]]\nname = 'search'\nobjective = 0.9\n")
    with pytest.raises(
        ConfigError, match=r"SLO 'search' is declared twice with different values: at .*b\.toml"
    ):
        slo_groups("--slo", str(other), "--slo", str(clash))


def test_a_module_source_is_imported_from_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path / "shop_slos_cwd.py", "import obskit\nobskit.slo('checkout', objective=0.999)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "shop_slos_cwd", raising=False)
    assert _cli.main(["rules", "--slo", "shop_slos_cwd"]) == 0
    assert "name: 'obskit-slo-checkout'" in capsys.readouterr().out


def test_a_bad_source_exits_2_with_the_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "a.toml", "[[slo]]\nname = 'x'\nobjective = 99.9\n")
    output = tmp_path / "rules.yml"
    assert _cli.main(["rules", "--slo", str(path), "-o", str(output)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert not output.exists()
    assert err.startswith(
        "obskit rules: invalid value for objective: 99.9; allowed: a number above 0 and below 1"
    )
    assert _cli.main(["rules", "--slo", str(tmp_path / "none.toml")]) == 2
    assert "obskit rules: cannot load SLOs from" in capsys.readouterr().err


def test_slo_only_writes_the_slo_groups_the_full_file_has(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    # The rules written without --slo plus those of --slo-only are those of --slo, group for group:
    # two files Prometheus loads side by side without recording a series twice.
    full = document("--slo", source)["groups"]
    assert [g["name"] for g in document()["groups"]] + [
        g["name"] for g in document("--slo-only", "--slo", source)["groups"]
    ] == [g["name"] for g in full]
    assert document()["groups"] + document("--slo-only", "--slo", source)["groups"] == full
    (tmp_path / "obskit.toml").write_text(Path(source).read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert [g["name"] for g in document("--slo-only")["groups"]] == ["obskit-slo-checkout", "obskit-slo-llm"]
    output = tmp_path / "slo-rules.yml"
    assert _cli.main(["rules", "--slo-only", "-o", str(output)]) == 0
    assert [g["name"] for g in yaml.safe_load(output.read_text(encoding="utf-8"))["groups"]] == [
        "obskit-slo-checkout", "obskit-slo-llm"
    ]  # fmt: skip
    if PROMTOOL is not None:
        base = tmp_path / "rules.yml"
        assert _cli.main(["rules", "-o", str(base)]) == 0
        checked = subprocess.run(
            [PROMTOOL, "check", "rules", str(base), str(output)], capture_output=True, text=True, check=False
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_slo_only_without_obskit_toml_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert _cli.main(["rules", "--slo-only"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("obskit rules: cannot load SLOs from obskit.toml")


def test_the_rules_help_describes_slo(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _cli.main(["rules", "--help"])
    shown = capsys.readouterr().out
    assert "--slo [SOURCE]" in shown
    assert "--slo-only" in shown
