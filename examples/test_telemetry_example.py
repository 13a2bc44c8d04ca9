"""Testing your own code's telemetry: the kind of test file a user of obskit writes.

It imports the batch worker (examples/batch_worker.py) and asserts on the metrics, spans and
logs its functions emit, through the ``obskit_capture`` fixture that comes with obskit (a pytest
plugin, registered when obskit is installed). Nothing needs configuring: inside the fixture obskit
records into memory, and each test sees only what it caused. Run it::

    python -m pytest examples/test_telemetry_example.py

See docs/testing.md for every assertion the capture offers.
"""

from __future__ import annotations

import pytest
from batch_worker import (
    Record,
    Store,
    StoreUnavailable,
    Summary,
    export_record,
    run_batch,
    sample_batch,
)

from obskit.testing import Capture


def test_an_exported_record_is_counted_timed_and_sized(obskit_capture: Capture) -> None:
    size = export_record(Record(1, "customer-1", 199), Store())

    obskit_capture.assert_counter("export_records_total", 1, outcome="exported")
    obskit_capture.assert_counter("obskit_jobs_total", 1, job_name="export_record", status="success")
    assert obskit_capture.histogram_count("obskit_job_duration_seconds", job_name="export_record") == 1
    assert obskit_capture.histogram_count("export_record_bytes") == 1
    assert obskit_capture.histogram_sum("export_record_bytes") == size
    buckets = obskit_capture.histogram_buckets("export_record_bytes")  # cumulative, by upper bound
    assert (buckets[32], buckets[64], buckets[float("inf")]) == (0, 1, 1)
    obskit_capture.assert_span("export_record", status="OK")


def test_a_busy_store_is_retried_and_the_retry_logged(obskit_capture: Capture) -> None:
    export_record(Record(5, "customer-2", 599), Store(busy_every=5), backoff=0)

    obskit_capture.assert_counter("export_retries_total", 1)
    obskit_capture.assert_counter("export_records_total", 1, outcome="exported")
    [retry] = obskit_capture.logs(level="WARNING", message="store busy, retrying")
    assert retry["attempt"] == 1


def test_an_invalid_record_fails_its_own_job_and_the_batch_goes_on(obskit_capture: Capture) -> None:
    summary = run_batch([Record(1, "customer-1", 199), Record(2, "", 299)], Store(), run_id="run-1")

    assert summary == Summary(exported=1, invalid=1)
    obskit_capture.assert_counter("obskit_jobs_total", 1, job_name="export_record", status="error")
    obskit_capture.assert_counter("obskit_jobs_total", 1, job_name="nightly_export", status="success")
    obskit_capture.assert_counter("export_records_total", 1, outcome="invalid")
    failed = obskit_capture.assert_span("export_record", status="ERROR")
    assert [event.name for event in failed.events] == ["exception"]
    [skipped] = obskit_capture.logs(level="WARNING", message="record skipped")
    assert skipped["request_id"] == "run-1"
    assert skipped["record_id"] == 2


def test_a_batch_reports_its_results_and_every_line_carries_the_run_id(obskit_capture: Capture) -> None:
    summary = run_batch(sample_batch(20), Store(busy_every=5), run_id="nightly-0601", backoff=0)

    assert summary == Summary(exported=17, invalid=3)  # records 6, 13 and 20 have no customer
    assert (
        obskit_capture.gauge_value("obskit_job_result", job_name="nightly_export", result="records_invalid")
        == 3
    )
    batch = obskit_capture.assert_span("nightly_export", status="OK", **{"job.result.records_exported": 17})
    per_record = obskit_capture.spans("export_record")
    assert len(per_record) == 20
    assert {span.parent.span_id for span in per_record if span.parent} == {batch.context.span_id}
    obskit_capture.assert_counter("export_retries_total", 3)  # records 5, 10 and 15
    lines = obskit_capture.logs(logger="nightly_export")
    assert lines
    assert {line["request_id"] for line in lines} == {"nightly-0601"}


def test_a_store_outage_fails_the_batch_and_logs_the_error(obskit_capture: Capture) -> None:
    with pytest.raises(StoreUnavailable):
        run_batch(sample_batch(3), Store(down=True), run_id="run-down", backoff=0)

    obskit_capture.assert_counter("obskit_jobs_total", 1, job_name="nightly_export", status="error")
    obskit_capture.assert_counter("obskit_jobs_total", 0, job_name="nightly_export", status="success")
    obskit_capture.assert_counter("export_retries_total", 2)  # three tries, then the batch stops
    obskit_capture.assert_span("nightly_export", status="ERROR")
    [failure] = obskit_capture.logs(level="ERROR", message="batch failed", request_id="run-down")
    assert failure["exception"]["type"] == "StoreUnavailable"
    assert failure["trace_id"] == format(obskit_capture.spans("nightly_export")[0].context.trace_id, "032x")
