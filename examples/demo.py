"""A small batch service instrumented with obskit on the console default.

Run it: ``python examples/demo.py``. Log lines (JSON) go to stdout; spans and metrics go to
stderr as readable lines. Nothing needs to be installed besides obskit itself.
"""

from __future__ import annotations

import asyncio
import logging
import random

import obskit
from obskit import LoggingContext, MetricsCollector, trace_operation, track_job

log = logging.getLogger("demo")
metrics = MetricsCollector(namespace="demo")
scores = metrics.histogram(
    "compliance_score",
    "Compliance score of checked articles",
    labels=["category"],
    buckets=[0.1, 0.25, 0.5, 0.75, 0.9, 1.0],
)
cache = metrics  # the ready-made helpers live on every collector


@trace_operation("extract_content", attributes={"stage": "extract"})
def extract(text: str) -> list[str]:
    return [word for word in text.split() if word.isalpha()]


@trace_operation(record_args=True)
async def score(words: list[str], api_key: str) -> float:
    await asyncio.sleep(0.01)
    metrics.external_call("llm", "score", 0.01, tokens={"prompt": len(words), "completion": 3})
    return min(1.0, len(set(words)) / max(1, len(words)))


@track_job("compliance_check", results=lambda value: {"score": value})
async def check(article: str, category: str) -> float:
    words = extract(article)
    metrics.cache_access("articles", hit=random.random() < 0.5)
    if "forbidden" in words:
        raise ValueError("article contains a forbidden word")
    value = await score(words, api_key="sk-demo-secret")
    scores.observe(value, category=category)
    log.info("article checked", extra={"category": category, "score": round(value, 3)})
    return value


async def main() -> None:
    articles = [
        ("the quick brown fox jumps over the lazy dog", "animals"),
        ("markets rose and markets fell and markets rose", "finance"),
        ("this text has a forbidden word in it", "finance"),
        ("one two three four five six", "numbers"),
    ]
    for number, (article, category) in enumerate(articles):
        with LoggingContext(user_id=f"user-{number}", job_id=number):
            try:
                await check(article, category)
            except ValueError:
                log.exception("article rejected", extra={"category": category})


if __name__ == "__main__":
    obskit.configure(service_name="demo-compliance", service_version="1.0.0", runtime_metrics=True)
    asyncio.run(main())
    obskit.shutdown()  # flushes the spans and prints the metrics once more
