"""py-consul's contender for `cargo xtask bench`.

Speaks the harness contract of crates/consul-kv-bench/src/harness.rs:

    --target URL --workload get|set|cas|items|keys|watch [--inflight N]
    [--iterations N | --seconds S] [--warmup N] [--keys N] [--value-size B]
    [--watchers N] [--rounds N] [--prefix P] [--key K]

and prints one JSON object on one line. py-consul is a blocking client (requests), so
`--inflight N` runs N threads, each with its own `consul.Consul` as its documentation
suggests for threads. Every operation is timed with time.perf_counter_ns; percentiles are
nearest-rank over all samples of the measured phase.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
from urllib.parse import urlparse

import consul

DEFAULT_KEYS = {
    "get": "bench/get",
    "set": "bench/set",
    "cas": "bench/cas",
    "items": "bench/items/",
    "keys": "bench/items/",
    "watch": "bench/watch",
}


def parse_args(argv):
    p = {
        "target": None,
        "workload": None,
        "inflight": 1,
        "iterations": 1000,
        "seconds": 0.0,
        "warmup": None,
        "keys": 0,
        "value_size": 128,
        "watchers": 1000,
        "rounds": 5,
        "prefix": "bench/items/",
        "key": None,
    }
    conv = {
        "inflight": int,
        "iterations": int,
        "seconds": float,
        "warmup": int,
        "keys": int,
        "value_size": int,
        "watchers": int,
        "rounds": int,
    }
    if len(argv) % 2:
        raise SystemExit(f"{argv[-1]} needs a value")
    for flag, value in zip(argv[::2], argv[1::2]):
        name = flag.lstrip("-").replace("-", "_")
        if name == "contender":
            continue
        if name not in p:
            raise SystemExit(f"unknown flag {flag!r}")
        p[name] = conv.get(name, str)(value)
    if not p["target"] or p["workload"] not in DEFAULT_KEYS:
        raise SystemExit("--target and a known --workload are required")
    if p["warmup"] is None:
        p["warmup"] = 1 if p["workload"] in ("items", "keys") else 100
    p["key"] = p["key"] or DEFAULT_KEYS[p["workload"]]
    p["inflight"] = max(1, p["inflight"])
    return p


def client(target):
    u = urlparse(target)
    return consul.Consul(host=u.hostname, port=u.port or 8500, scheme=u.scheme or "http")


def peak_rss_kb():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def percentile(sorted_samples, pct):
    if not sorted_samples:
        return 0
    rank = math.ceil(pct / 100 * len(sorted_samples))
    return sorted_samples[min(max(rank, 1), len(sorted_samples)) - 1]


def outcome(p):
    return {
        "contender": "py-consul",
        "workload": p["workload"],
        "inflight": p["watchers"] if p["workload"] == "watch" else p["inflight"],
        "count": 0,
        "errors": 0,
        "seconds": 0.0,
        "ops_per_sec": 0.0,
        "p50_us": 0.0,
        "p99_us": 0.0,
        "mean_us": 0.0,
        "max_us": 0.0,
        "entries": None,
        "rss_delta_kb": None,
        "hwm_kb": None,
        "unsupported": False,
        "note": "",
    }


def fill(o, samples, seconds):
    samples.sort()
    o["count"] = len(samples)
    o["seconds"] = seconds
    o["ops_per_sec"] = len(samples) / seconds if seconds > 0 else 0.0
    o["p50_us"] = percentile(samples, 50) / 1e3
    o["p99_us"] = percentile(samples, 99) / 1e3
    o["max_us"] = (samples[-1] / 1e3) if samples else 0.0
    o["mean_us"] = (sum(samples) / len(samples) / 1e3) if samples else 0.0


class Ops:
    def __init__(self, p):
        self.p = p
        self.value = b"v" * p["value_size"]
        self.entries = 0

    def one(self, c):
        p = self.p
        w = p["workload"]
        if w == "get":
            _, v = c.kv.get(p["key"])
            if v is None:
                raise RuntimeError(f"{p['key']} does not exist")
        elif w == "set":
            if not c.kv.put(p["key"], self.value):
                raise RuntimeError("set answered false")
        elif w == "cas":
            for _ in range(1000):
                _, v = c.kv.get(p["key"])
                if c.kv.put(p["key"], self.value, cas=v["ModifyIndex"] if v else 0):
                    return
            raise RuntimeError("1000 CAS conflicts in a row")
        else:
            _, v = c.kv.get(p["prefix"], recurse=(w == "items"), keys=(w == "keys"))
            n = len(v or [])
            self.entries = n
            if p["keys"] and n != p["keys"]:
                raise RuntimeError(f"expected {p['keys']} entries under {p['prefix']}, got {n}")

    def drive(self, clients, limit, seconds):
        """Runs the operation on len(clients) threads until `limit` ops or `seconds` pass."""
        lock = threading.Lock()
        state = {"taken": 0, "stop": False}
        results = []
        deadline = time.perf_counter() + seconds if seconds > 0 else None

        def worker(c):
            samples, errors, first = [], 0, None
            while not state["stop"]:
                if deadline is not None:
                    if time.perf_counter() >= deadline:
                        break
                else:
                    with lock:
                        state["taken"] += 1
                        if state["taken"] > limit:
                            break
                t = time.perf_counter_ns()
                try:
                    self.one(c)
                except Exception as e:  # noqa: BLE001 - every failure is counted
                    errors += 1
                    first = first or repr(e)
                    if errors >= 100:
                        state["stop"] = True
                        first = "100 operations failed; first: " + first
                    continue
                samples.append(time.perf_counter_ns() - t)
            with lock:
                results.append((samples, errors, first))

        if limit == 0 and seconds <= 0:
            return [], 0, None
        threads = [threading.Thread(target=worker, args=(c,)) for c in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        samples, errors, first = [], 0, None
        for s, e, f in results:
            samples.extend(s)
            errors += e
            first = first or f
        return samples, errors, first


def run_ops(p, o):
    ops = Ops(p)
    clients = [client(p["target"]) for _ in range(p["inflight"])]
    if p["workload"] == "get":
        _, v = clients[0].kv.get(p["key"])
        if v is None:
            clients[0].kv.put(p["key"], ops.value)
    before = peak_rss_kb()
    _, werr, wfirst = ops.drive(clients, p["warmup"], 0)
    start = time.perf_counter()
    samples, errors, first = ops.drive(clients, p["iterations"], p["seconds"])
    seconds = time.perf_counter() - start
    fill(o, samples, seconds)
    o["errors"] = werr + errors
    o["note"] = wfirst or first or ""
    if p["workload"] in ("items", "keys"):
        after = peak_rss_kb()
        o["entries"] = ops.entries
        o["hwm_kb"] = after
        if after is not None and before is not None:
            o["rss_delta_kb"] = max(0, after - before)


def round_of(value):
    if isinstance(value, bytes) and value.startswith(b"round-"):
        try:
            return int(value[6:])
        except ValueError:
            return -1
    return -1


def run_watch(p, o):
    n, rounds, key = p["watchers"], p["rounds"], p["key"]
    writer = client(p["target"])
    writer.kv.put(key, b"round-0")
    ready = [0] * (rounds + 1)
    seen = [0] * (rounds + 1)
    state = {"failed": 0, "first": None}
    wakes = []
    lock = threading.Lock()

    def watcher():
        c = client(p["target"])
        try:
            index, v = c.kv.get(key)
            want = max(round_of(v["Value"]) if v else 0, 0) + 1
            while want <= rounds:
                with lock:
                    ready[want] += 1
                while True:
                    index, v = c.kv.get(key, index=index, wait="30s")
                    now = time.perf_counter_ns()
                    r = round_of(v["Value"]) if v else -1
                    if r >= want:
                        with lock:
                            if r == want:
                                wakes.append((r, now))
                            seen[r] += 1
                        want = r + 1
                        break
        except Exception as e:  # noqa: BLE001 - reported in the result
            with lock:
                state["failed"] += 1
                state["first"] = state["first"] or repr(e)

    threading.stack_size(256 * 1024)
    for _ in range(n):
        threading.Thread(target=watcher, daemon=True).start()
    written = [None] * (rounds + 1)
    first = None
    for r in range(1, rounds + 1):
        until = time.perf_counter() + 30
        while ready[r] + state["failed"] < n and time.perf_counter() < until:
            time.sleep(0.002)
        if state["failed"] >= n:
            break
        # The same settle rule as the harness: 600 ms + 0.1 ms per watcher.
        time.sleep((600 + n // 10) / 1000)
        t0 = time.perf_counter_ns()
        writer.kv.put(key, f"round-{r}".encode())
        written[r] = t0
        first = first or t0
        until = time.perf_counter() + 30
        while seen[r] + state["failed"] < n and time.perf_counter() < until:
            time.sleep(0.001)
    with lock:
        samples = [at - written[r] for r, at in wakes if written[r] is not None]
    seconds = (time.perf_counter_ns() - first) / 1e9 if first else 0.0
    fill(o, samples, seconds)
    o["errors"] = max(0, n * rounds - o["count"])
    o["note"] = state["first"] or ""


def main():
    p = parse_args(sys.argv[1:])
    o = outcome(p)
    try:
        if p["workload"] == "watch":
            run_watch(p, o)
        else:
            run_ops(p, o)
    except Exception as e:  # noqa: BLE001 - reported in the result
        o["errors"] = max(o["errors"], 1)
        o["note"] = repr(e)
    sys.stdout.write(json.dumps(o) + "\n")
    sys.stdout.flush()
    # Watcher threads may still be parked in blocking reads.
    os._exit(0)


if __name__ == "__main__":
    main()
