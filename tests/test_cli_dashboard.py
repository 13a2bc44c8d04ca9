"""``obskit dashboard``: a valid Grafana dashboard JSON model, its options and its errors.

There is no Grafana server here: the model is checked against the documented dashboard JSON model
(required keys, unique panel ids, a 24-column grid without overlaps, targets with refId and expr,
data source references that resolve to the dashboard's data source variable). A real Prometheus
evaluates every query in tests/integration/test_rules_dashboard.py.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest

from obskit import _cli
from obskit._cli import dashboard

#: Units Grafana knows (a subset of its unit catalogue) that the panels may use.
UNITS = {"reqps", "s", "percentunit", "ops", "cps", "none", "short", "suffix:x"}
PANEL_TYPES = {"row", "timeseries", "stat"}


OBJECTIVES = """
[[slo]]
name = "checkout"
objective = 0.999
route = "/checkout"

[[slo]]
name = "search"
objective = 0.99
route = "/search"
latency_under = 0.25
window = "7d"

[[slo]]
name = "nightly"
objective = 0.95
job = "nightly_export"

[[slo]]
name = 'odd "name"'
objective = 0.9
target = "payments"
"""


@pytest.fixture(params=["overview", "with-slo"])
def options(request: pytest.FixtureRequest, tmp_path: Path) -> list[str]:
    """No option (the overview alone), or ``--slo`` with four objectives (a row each after it)."""
    if request.param == "overview":
        return []
    path = tmp_path / "slos.toml"
    path.write_text(OBJECTIVES)
    return ["--slo", str(path)]


def generate(capsys: pytest.CaptureFixture[str], *options: str) -> dict[str, Any]:
    assert _cli.main(["dashboard", *options]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.endswith("}\n")
    model: dict[str, Any] = json.loads(out)
    return model


def targets(model: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for p in model["panels"] for t in p.get("targets", [])]


def panel(model: dict[str, Any], title: str) -> dict[str, Any]:
    return next(p for p in model["panels"] if p["title"] == title)


def rejected(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        _cli.main(list(argv))
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    return err


# -- the dashboard JSON model ---------------------------------------------------------------------


def test_dashboard_has_the_required_top_level_keys(capsys: pytest.CaptureFixture[str]) -> None:
    model = generate(capsys)
    assert model["schemaVersion"] == dashboard.SCHEMA_VERSION == 39
    assert model["uid"] == "obskit-obskit"
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", model["uid"])
    assert model["title"] == "obskit service overview"
    assert model["time"] == {"from": "now-1h", "to": "now"}
    assert isinstance(model["version"], int)
    assert model["editable"] is True
    assert isinstance(model["templating"]["list"], list)
    assert isinstance(model["annotations"]["list"], list)
    assert "id" not in model  # Grafana assigns the numeric id on import
    assert model["panels"]


def test_panel_ids_are_unique_and_every_panel_is_well_formed(
    capsys: pytest.CaptureFixture[str], options: list[str]
) -> None:
    model = generate(capsys, *options)
    ids = [p["id"] for p in model["panels"]]
    assert len(ids) == len(set(ids))
    assert all(isinstance(i, int) and i > 0 for i in ids)
    for p in model["panels"]:
        assert p["type"] in PANEL_TYPES
        assert p["title"]
        assert set(p["gridPos"]) == {"h", "w", "x", "y"}
        if p["type"] == "row":
            assert p["gridPos"] == {**p["gridPos"], "h": 1, "w": 24, "x": 0}
            assert p["panels"] == []
            continue
        assert p["targets"]
        assert p["fieldConfig"]["defaults"]["unit"] in UNITS
        assert isinstance(p["fieldConfig"]["overrides"], list)
        ref_ids = [t["refId"] for t in p["targets"]]
        assert len(ref_ids) == len(set(ref_ids))
        for t in p["targets"]:
            assert re.fullmatch(r"[A-Z]", t["refId"])
            assert t["expr"].strip()
            assert "legendFormat" in t


def test_grid_positions_fit_24_columns_without_overlapping(
    capsys: pytest.CaptureFixture[str], options: list[str]
) -> None:
    boxes = [p["gridPos"] for p in generate(capsys, *options)["panels"]]
    for box in boxes:
        assert box["x"] >= 0
        assert box["y"] >= 0
        assert box["w"] >= 1
        assert box["h"] >= 1
        assert box["x"] + box["w"] <= 24
    for a, b in itertools.combinations(boxes, 2):
        apart = (
            a["x"] + a["w"] <= b["x"]
            or b["x"] + b["w"] <= a["x"]
            or a["y"] + a["h"] <= b["y"]
            or b["y"] + b["h"] <= a["y"]
        )
        assert apart, (a, b)
    # Reading order: no panel starts above the one listed before it.
    assert [b["y"] for b in boxes] == sorted(b["y"] for b in boxes)


def test_every_datasource_reference_resolves_to_the_prometheus_datasource_variable(
    capsys: pytest.CaptureFixture[str], options: list[str]
) -> None:
    model = generate(capsys, *options)
    variables = {v["name"]: v for v in model["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    reference = {"type": "prometheus", "uid": "${datasource}"}
    for p in model["panels"]:
        if p["type"] != "row":
            assert p["datasource"] == reference
            assert all(t["datasource"] == reference for t in p["targets"])
    assert all(v["datasource"] == reference for v in variables.values() if v["type"] == "query")


def test_queries_use_only_defined_variables(capsys: pytest.CaptureFixture[str], options: list[str]) -> None:
    model = generate(capsys, *options)
    defined = {v["name"] for v in model["templating"]["list"]} | {"__rate_interval"}
    queries = [t["expr"] for t in targets(model)] + [
        v["query"] for v in model["templating"]["list"] if v["type"] == "query"
    ]
    used = {name for q in queries for name in re.findall(r"\$\{?(\w+)", q)}
    assert used <= defined
    assert {"job", "route", "obskit_job", "__rate_interval"} <= used
    for v in model["templating"]["list"]:
        if v["type"] == "query":
            assert v["query"].startswith("label_values(")
            assert v["definition"] == v["query"]
            assert v["multi"]
            assert v["includeAll"]
            assert v["allValue"] == ".*"


def test_panels_cover_requests_errors_latency_jobs_health_and_telemetry(
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = generate(capsys)
    units = {p["title"]: p["fieldConfig"]["defaults"]["unit"] for p in model["panels"] if p["type"] != "row"}
    assert units["Request rate by route"] == "reqps"
    assert units["5xx ratio by route"] == "percentunit"
    assert units["Latency p50 / p95 by route"] == "s"
    assert units["Job duration p95"] == "s"
    for title in ("Requests in progress", "Jobs by status", "Jobs in progress", "Health check status"):
        assert title in units
    assert "Telemetry dropped" in units
    latency = panel(model, "Latency p50 / p95 by route")["targets"]
    assert [t["expr"].split(",")[0] for t in latency] == ["histogram_quantile(0.5", "histogram_quantile(0.95"]
    assert all("by (route, le)" in t["expr"] and 'route=~"$route"' in t["expr"] for t in latency)
    jobs = panel(model, "Jobs by status")["targets"][0]
    assert jobs["expr"] == (
        'sum by (job_name, status) (rate(obskit_jobs_total{job=~"$job",job_name=~"$obskit_job"}'
        "[$__rate_interval]))"
    )
    assert jobs["legendFormat"] == "{{job_name}} {{status}}"
    dropped = panel(model, "Telemetry dropped")["targets"][0]["expr"]
    assert "obskit_telemetry_dropped_total" in dropped
    assert "by (signal, reason)" in dropped
    health = panel(model, "Health check status")
    assert health["targets"][0]["expr"] == 'min by (check) (obskit_health_check_status{job=~"$job"})'
    assert health["fieldConfig"]["defaults"]["mappings"][0]["options"]["0"]["text"] == "failing"


# -- options --------------------------------------------------------------------------------------


def test_title_uid_and_namespace_options(capsys: pytest.CaptureFixture[str]) -> None:
    model = generate(capsys, "--title", "Payments API", "--uid", "payments-api", "--namespace", "acme")
    assert (model["title"], model["uid"]) == ("Payments API", "payments-api")
    exprs = " ".join(t["expr"] for t in targets(model))
    assert "acme_jobs_total" in exprs
    assert "acme_health_check_status" in exprs
    assert "obskit_jobs_total" not in exprs
    assert "http_server_requests_total" in exprs
    assert "obskit_telemetry_dropped_total" in exprs
    default = generate(capsys, "--namespace", "a_very_long_namespace_for_a_grafana_uid_rule")
    assert len(default["uid"]) == 40
    assert default["title"].endswith("(a_very_long_namespace_for_a_grafana_uid_rule)")


def test_namespace_from_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OBSKIT_METRIC_NAMESPACE", "fromenv")
    model = generate(capsys)
    assert model["uid"] == "obskit-fromenv"
    assert any("fromenv_jobs_total" in t["expr"] for t in targets(model))


def test_job_label_option_changes_the_job_grouping(capsys: pytest.CaptureFixture[str]) -> None:
    model = generate(capsys, "--job-label", "job")
    assert all("job_name" not in t["expr"] for t in targets(model))
    assert panel(model, "Jobs by status")["targets"][0]["legendFormat"] == "{{job}} {{status}}"
    variables = {v["name"]: v for v in model["templating"]["list"]}
    assert variables["obskit_job"]["query"].endswith(", job)")


def test_thresholds_colour_the_stat_panels(capsys: pytest.CaptureFixture[str]) -> None:
    model = generate(capsys, "--error-rate", "0.02", "--latency-p95", "0.3")
    steps = panel(model, "5xx ratio")["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps == [{"color": "green", "value": None}, {"color": "red", "value": 0.02}]
    steps = panel(model, "p95 latency")["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps[-1] == {"color": "red", "value": 0.3}


def test_output_writes_the_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "obskit.json"
    assert _cli.main(["dashboard", "--output", str(path)]) == 0
    assert capsys.readouterr() == ("", "")
    assert json.loads(path.read_text(encoding="utf-8")) == generate(capsys)
    assert _cli.main(["dashboard", "--output", str(tmp_path)]) == 2  # a directory
    assert capsys.readouterr().err.startswith("obskit dashboard: cannot write --output ")


# -- --slo: a row per service level objective -----------------------------------------------------


def slo_model(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "slos.toml"
    path.write_text(OBJECTIVES)
    return generate(capsys, "--slo", str(path))


def rows(model: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Each row's title -> the panels under it."""
    found: dict[str, list[dict[str, Any]]] = {}
    for p in model["panels"]:
        if p["type"] == "row":
            current = found.setdefault(p["title"], [])
        else:
            current.append(p)
    return found


def test_slo_adds_a_row_per_objective_after_the_overview(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    overview = generate(capsys)
    model = slo_model(capsys, tmp_path)
    titles = list(rows(model))
    assert titles[: len(rows(overview))] == list(rows(overview))
    assert titles[len(rows(overview)) :] == [
        "SLO checkout: availability, 99.9% over 30d",
        "SLO search: latency under 0.25s, 99% over 7d",
        "SLO nightly: success of job nightly_export, 95% over 30d",
        'SLO odd "name": availability of calls to payments, 90% over 30d',
    ]
    assert "obskit_slo" not in json.dumps(overview)


def test_slo_row_shows_budget_burn_rate_by_window_and_sli(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from obskit._cli import _slo

    budget, achieved, burn, sli = rows(slo_model(capsys, tmp_path))[
        "SLO search: latency under 0.25s, 99% over 7d"
    ]
    assert (budget["type"], budget["title"]) == ("stat", "search: error budget remaining")
    assert budget["targets"][0]["expr"] == 'obskit_slo:error_budget_remaining:ratio{slo="search"}'
    assert budget["fieldConfig"]["defaults"]["unit"] == "percentunit"
    assert budget["fieldConfig"]["defaults"]["thresholds"]["steps"][:2] == [
        {"color": "red", "value": None},  # below 0: the objective is missed
        {"color": "orange", "value": 0},
    ]
    assert (achieved["type"], achieved["title"]) == ("stat", "search: SLI over 7d")
    assert achieved["targets"][0]["expr"] == '1 - obskit_slo:sli_error:ratio_rate7d{slo="search"}'
    assert achieved["fieldConfig"]["defaults"]["thresholds"]["steps"][-1] == {"color": "green", "value": 0.99}
    # Burn rate: one line per window the rules record (the alerts' windows and the period).
    assert (burn["type"], burn["title"]) == ("timeseries", "search: burn rate by window")
    assert [t["legendFormat"] for t in burn["targets"]] == [*_slo.WINDOWS, "7d"]
    assert [t["expr"] for t in burn["targets"]] == [
        f'obskit_slo:burn_rate:rate{w}{{slo="search"}}' for w in (*_slo.WINDOWS, "7d")
    ]
    defaults = burn["fieldConfig"]["defaults"]
    assert [step["value"] for step in defaults["thresholds"]["steps"]] == [None, 1, 3, 6, 14.4]
    assert defaults["custom"]["thresholdsStyle"] == {"mode": "line"}
    # The SLI over time: 1 - error ratio over a short window, an hour and the period, and the objective.
    assert (sli["type"], sli["title"]) == ("timeseries", "search: SLI (1 - error ratio)")
    assert [(t["expr"], t["legendFormat"]) for t in sli["targets"]] == [
        ('1 - obskit_slo:sli_error:ratio_rate5m{slo="search"}', "over 5m"),
        ('1 - obskit_slo:sli_error:ratio_rate1h{slo="search"}', "over 1h"),
        ('1 - obskit_slo:sli_error:ratio_rate7d{slo="search"}', "over 7d"),
        ('obskit_slo:objective:ratio{slo="search"}', "objective"),
    ]
    assert "min" not in sli["fieldConfig"]["defaults"]  # 99% and 100% would look the same from 0


def test_slo_panels_read_only_series_the_slo_rules_record(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from obskit._cli import _promql, _slo
    from obskit._recording.slo import load

    path = tmp_path / "slos.toml"
    path.write_text(OBJECTIVES)
    families = _promql.families("obskit")
    recorded = {
        (rule["record"], rule["labels"]["slo"])
        for objective in load(str(path))
        for rule in _slo.group(objective, families)["rules"]
        if "record" in rule
    }
    model = slo_model(capsys, tmp_path)
    queried = {
        (metric, json.loads(name))
        for t in targets(model)
        for metric, name in re.findall(r'(obskit_slo:[\w:]+)\{slo=("(?:[^"\\]|\\.)*")\}', t["expr"])
    }
    # Each objective: budget, objective, 8 burn rates (7 windows and the period), 3 error ratios.
    assert len(queried) == 4 * (1 + 1 + 8 + 3)
    assert queried <= recorded
    assert ("obskit_slo:objective:ratio", 'odd "name"') in queried


def test_slo_without_source_reads_obskit_toml(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "obskit.toml").write_text(OBJECTIVES)
    monkeypatch.chdir(tmp_path)
    assert generate(capsys, "--slo") == slo_model(capsys, tmp_path)


def test_slo_source_errors_exit_2_naming_the_source(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "missing.toml"
    assert _cli.main(["dashboard", "--slo", str(missing)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("obskit dashboard: ")
    assert "missing.toml" in err
    bad = tmp_path / "bad.toml"
    bad.write_text('[[slo]]\nname = "x"\nobjective = 0.99\nroute = "/a"\nlatency_under = 0.3\n')
    assert _cli.main(["dashboard", "--slo", str(bad)]) == 2
    assert "0.25" in capsys.readouterr().err  # the bucket bounds allowed are listed


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "allowed"),
    [
        ("--uid", "has space", "1 to 40 letters, digits, '-' or '_'"),
        ("--uid", "x" * 41, "1 to 40 letters, digits, '-' or '_'"),
        ("--title", " ", "a non-empty title"),
        ("--error-rate", "2", "a ratio above 0 and at most 1"),
        ("--latency-p95", "0", "a positive number of seconds"),
        ("--job-label", "job-name", "a Prometheus label name"),
    ],
)
def test_bad_option_values_exit_2_naming_the_option(
    capsys: pytest.CaptureFixture[str], option: str, value: str, allowed: str
) -> None:
    err = rejected(capsys, "dashboard", option, value)
    assert f"argument {option}: invalid value {value!r}; allowed: {allowed}" in err


def test_bad_namespace_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli.main(["dashboard", "--namespace", "a-b"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("obskit dashboard: invalid value for --namespace: 'a-b'; allowed:")
