"""A nightly batch worker: exports a batch of records, retries a busy store, pushes its metrics.

A batch job exits before Prometheus would scrape it, so this one pushes its metrics to a push
gateway (see docs/backends/prometheus.md): after its tracked jobs (at most once a second) and
once more at shutdown, so the gateway holds the final numbers once the process has exited.

Run it against a local push gateway::

    prometheus-pushgateway --web.listen-address=127.0.0.1:9091 &
    OBSKIT_PUSHGATEWAY_URL=http://127.0.0.1:9091 python examples/batch_worker.py
    curl -s localhost:9091/metrics | grep -E '^(obskit_jobs_total|export_records_total)'

``--pushgateway-url URL`` says the same as the variable; other settings come from the
environment, e.g. a grouping label: ``OBSKIT_PUSHGATEWAY_GROUPING=instance=worker-1``.
``--store-down`` simulates an outage: the batch fails, the process exits 1, and the gateway shows
``obskit_jobs_total{job_name="nightly_export",status="error"} 1``. Without a push gateway it
still runs and prints its metrics on stderr when it exits. JSON log lines go to stdout, spans to
stderr.

What it records:

- ``obskit_jobs_total{job_name, status}``, ``obskit_job_duration_seconds{job_name}``: the whole
  batch (``nightly_export``) and each record (``export_record``). The gateway's own ``job`` label
  is the service name, ``nightly-export``.
- ``obskit_job_result{job_name="nightly_export", result}``: records exported and invalid.
- ``export_records_total{outcome}``, ``export_retries_total`` and the histogram
  ``export_record_bytes``: the worker's own metrics.
- Every log line of a run carries the run id (as ``request_id``) and the record's id.

examples/test_telemetry_example.py tests this worker's telemetry with ``obskit_capture``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import obskit
from obskit import Job, LoggingContext, MetricsCollector, track_job

log = logging.getLogger("nightly_export")
metrics = MetricsCollector()
records = metrics.counter(
    "export_records", "Records handled by the nightly export, by outcome.", labels=["outcome"]
)
retries = metrics.counter("export_retries", "Writes tried again because the store was busy.")
record_bytes = metrics.histogram(
    "export_record_bytes", "Size of each exported row.", buckets=[32, 64, 128, 256, 1024]
)

MAX_ATTEMPTS = 3


class InvalidRecord(ValueError):
    """A record that cannot be exported: counted, logged and skipped."""


class StoreBusy(Exception):
    """The store refused a write for now: worth another try."""


class StoreUnavailable(RuntimeError):
    """The store kept refusing writes: the batch stops."""


@dataclass(frozen=True)
class Record:
    id: int
    customer: str
    amount_cents: int


@dataclass
class Store:
    """Stand-in for the warehouse: refuses the first write of every ``busy_every``-th record
    (0: never), or every write when ``down``."""

    busy_every: int = 0
    down: bool = False
    rows: dict[int, bytes] = field(default_factory=dict)
    tries: Counter[int] = field(default_factory=Counter)

    def write(self, record_id: int, row: bytes) -> None:
        self.tries[record_id] += 1
        first_try = self.tries[record_id] == 1
        if self.down or (self.busy_every and record_id % self.busy_every == 0 and first_try):
            raise StoreBusy(f"store busy writing record {record_id}")
        self.rows[record_id] = row


@dataclass(frozen=True)
class Summary:
    exported: int
    invalid: int


def sample_batch(size: int) -> list[Record]:
    """Records 1 to ``size``; every 7th (6, 13, 20, ...) has no customer and is invalid."""
    return [Record(i, "" if i % 7 == 6 else f"customer-{i % 3}", 100 * i + 99) for i in range(1, size + 1)]


@track_job("export_record")
def export_record(record: Record, store: Store, backoff: float = 0.05) -> int:
    """Validate, serialise and write one record, retrying a busy store; returns the row's size."""
    if not record.customer:
        raise InvalidRecord(f"record {record.id} has no customer")
    row = json.dumps({"id": record.id, "customer": record.customer, "amount": record.amount_cents / 100})
    data = row.encode()
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            store.write(record.id, data)
            break
        except StoreBusy as error:
            if attempt == MAX_ATTEMPTS:
                raise StoreUnavailable(f"the store refused record {record.id} {attempt} times") from error
            retries.inc()
            log.warning("store busy, retrying", extra={"attempt": attempt})
            time.sleep(backoff * attempt)
    record_bytes.observe(len(data))
    records.inc(outcome="exported")
    return len(data)


def run_batch(
    batch: Iterable[Record], store: Store, run_id: str | None = None, backoff: float = 0.05
) -> Summary:
    """Export ``batch`` as one tracked job: invalid records are skipped, a store outage stops it."""
    # The run id is the request id of every line logged during the run: one grep finds a run.
    with LoggingContext(request_id=run_id or uuid.uuid4().hex), track_job("nightly_export") as job:
        try:
            return _export_all(batch, store, job, backoff)
        except StoreUnavailable:
            log.exception("batch failed")  # inside the job's span: the line carries its trace id
            raise


def _export_all(batch: Iterable[Record], store: Store, job: Job, backoff: float) -> Summary:
    log.info("batch started")
    exported = invalid = 0
    for record in batch:
        with LoggingContext(record_id=record.id):
            try:
                export_record(record, store, backoff)
                exported += 1
            except InvalidRecord as error:
                invalid += 1
                records.inc(outcome="invalid")
                log.warning("record skipped", extra={"reason": str(error)})
    job.result("records_exported", exported)
    job.result("records_invalid", invalid)
    log.info("batch finished", extra={"exported": exported, "invalid": invalid})
    return Summary(exported, invalid)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Export a batch of records; push metrics to a gateway.")
    parser.add_argument("--pushgateway-url", help="push gateway URL (default: $OBSKIT_PUSHGATEWAY_URL)")
    parser.add_argument("--records", type=int, default=20, help="how many records (default: 20)")
    parser.add_argument("--store-down", action="store_true", help="simulate a store outage")
    args = parser.parse_args(argv)
    gateway = args.pushgateway_url or os.environ.get("OBSKIT_PUSHGATEWAY_URL")
    obskit.configure(
        service_name="nightly-export",
        metrics_exporter="prometheus" if gateway else "console",
        prometheus_port=0,  # the scrape server still runs while pushing: any free port will do
        pushgateway_url=gateway,
        push_on="job,shutdown",  # progress during a long run, the final numbers at exit
    )
    try:
        run_batch(sample_batch(args.records), Store(busy_every=5, down=args.store_down))
    except StoreUnavailable:
        return 1
    finally:
        obskit.shutdown()  # pushes the final numbers (or prints them), within shutdown_timeout
    return 0


if __name__ == "__main__":
    sys.exit(main())
