"""Shared helpers for benchmark scripts: figures to stdout and JSON beside the script."""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def summary_ms(values: list[float]) -> dict[str, float]:
    return {
        "count": len(values),
        "p50_ms": round(statistics.median(values) * 1000, 2) if values else None,
        "p99_ms": round(percentile(values, 0.99) * 1000, 2) if values else None,
        "max_ms": round(max(values) * 1000, 2) if values else None,
    }


def write_results(name: str, figures: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    figures = {"benchmark": name, "when": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": platform.platform(),
               "cpu_count": __import__("os").cpu_count(), **figures}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))
    return path


def run_until(app, condition, timeout_s: float = 300.0) -> None:
    """Turn the Qt event loop until `condition()` holds (a benchmark's own poll; tests wait on signals instead)."""
    deadline = time.perf_counter() + timeout_s
    while not condition():
        if time.perf_counter() > deadline:
            raise SystemExit("timed out")
        app.processEvents()
        time.sleep(0.001)


def finish_job(worker, loop, done: dict, job) -> None:
    """Submit `job` to an engine client and turn `loop` until its end message is in `done` (filled by the caller's
    message handler, which quits the loop); a failed job ends the benchmark with its message."""
    from studio.core.jobs import JobEvent

    worker.submit(job)
    while job.id not in done:
        loop.exec()
    if done[job.id].event == JobEvent.FAILED:
        raise SystemExit(done[job.id].error)
