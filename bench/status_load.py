"""Open-loop HTTP load on one URL: requests go out on a fixed schedule, never paced by answers.

Run as its own process by bench/daemon.py, so the load generator's CPU is not the
daemon's. Request i is due at start + i/rate; its latency is measured from that due
time, not from when it actually left, so time spent queueing (in this client, in the
kernel, in the daemon) counts, and a slow daemon cannot slow the load down and hide it
(coordinated omission). The run is bounded: exactly rate x seconds requests, each with
a timeout, so it ends within seconds + timeout.

    .venv/bin/python bench/status_load.py --url URL --token-file FILE [--rate 200]
        [--seconds 30] [--timeout 5] [--connections 256]

stdout gets `START` when the first request is due, then one JSON object of results.
"""

import argparse
import asyncio
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp


@dataclass
class LoadResults:
    """What the client saw; all times in seconds on the client's monotonic clock."""

    started: float = 0.0
    latencies: list[float] = field(default_factory=list)  # ok answers, from due time
    send_lags: list[float] = field(default_factory=list)  # actual send - due, every request
    errors: Counter[str] = field(default_factory=Counter)
    last_answer: float = 0.0
    cpu_at_start: float = 0.0  # this process's CPU seconds when the first request was due


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of `values` (0 when there are none)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


async def one_request(session: aiohttp.ClientSession, url: str, due: float,
                      results: LoadResults) -> None:
    loop = asyncio.get_running_loop()
    results.send_lags.append(loop.time() - due)
    try:
        async with session.get(url) as response:
            await response.read()
            status = response.status
    except TimeoutError:
        results.errors["timeout"] += 1
        return
    except aiohttp.ClientError as error:
        results.errors[type(error).__name__] += 1
        return
    finally:
        results.last_answer = loop.time()
    if status == 200:
        results.latencies.append(loop.time() - due)
    else:
        results.errors[f"HTTP {status}"] += 1


@dataclass(frozen=True)
class LoadPlan:
    url: str
    token: str = field(repr=False)
    rate: float = 200.0  # requests per second
    seconds: float = 30.0  # length of the schedule
    request_timeout: float = 5.0
    connections: int = 256  # most connections open at once

    @property
    def total(self) -> int:
        return round(self.rate * self.seconds)


async def run_load(plan: LoadPlan) -> LoadResults:
    """Send plan.total GETs on schedule; wait for every answer or its timeout."""
    results = LoadResults()
    connector = aiohttp.TCPConnector(limit=plan.connections)
    async with aiohttp.ClientSession(
            connector=connector, headers={"Authorization": f"Bearer {plan.token}"},
            timeout=aiohttp.ClientTimeout(total=plan.request_timeout)) as session:
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.05
        results.started = start
        results.cpu_at_start = time.process_time()
        print("START", flush=True)
        tasks: set[asyncio.Task[None]] = set()
        for i in range(plan.total):
            due = start + i / plan.rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one_request(session, plan.url, due, results))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            # Every request has its own timeout; this is only a backstop.
            await asyncio.wait(tasks, timeout=plan.request_timeout + 5)
        for task in tasks:
            task.cancel()
            results.errors["unfinished"] += 1
    return results


def summary(results: LoadResults, plan: LoadPlan) -> dict[str, Any]:
    """The JSON the benchmark reads: rates, errors, latency percentiles in ms."""
    ok = len(results.latencies)
    # From the first due time to the last answer, but never shorter than the schedule,
    # so a daemon that keeps up shows the rate asked for and one that lags shows less.
    span = max(results.last_answer - results.started, plan.seconds)
    client_cpu = time.process_time() - results.cpu_at_start
    ms = [1000 * value for value in results.latencies]
    lags = [1000 * value for value in results.send_lags]
    return {
        "requested": plan.total,
        "sent": len(results.send_lags),
        "ok": ok,
        "errors": dict(results.errors),
        "span_s": span,
        "achieved_rate": ok / span,
        "latency_ms": {name: percentile(ms, q) for name, q in
                       (("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("max", 1.0))},
        "send_lag_ms": {"p99": percentile(lags, 0.99), "max": percentile(lags, 1.0)},
        # Near 100 % the client, not the daemon, is the bottleneck.
        "client_cpu_percent": 100 * client_cpu / span,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", required=True, help="full URL to GET")
    parser.add_argument("--token-file", type=Path, required=True,
                        help="file holding the bearer token (kept off the command line)")
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the schedule")
    parser.add_argument("--timeout", type=float, default=5.0, help="per-request timeout, s")
    parser.add_argument("--connections", type=int, default=256,
                        help="most connections open at once (default 256)")
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.seconds <= 0 or args.timeout <= 0 or args.connections < 1:
        parser.error("--rate, --seconds, --timeout and --connections must be positive")
    plan = LoadPlan(url=args.url, token=args.token_file.read_text().strip(), rate=args.rate,
                    seconds=args.seconds, request_timeout=args.timeout,
                    connections=args.connections)
    wall = time.monotonic()
    results = asyncio.run(run_load(plan))
    report = summary(results, plan)
    report["client_wall_s"] = time.monotonic() - wall
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
