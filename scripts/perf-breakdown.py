#!/usr/bin/env python3
"""Where a bench's time goes: reads `perf script` output (a `perf record
--call-graph dwarf` of a bench process, see README, "Benchmarks") on stdin
and prints the share of samples per part of a request, first match wins.

Usage: perf script -i perf.data | scripts/perf-breakdown.py
"""

import collections
import sys

# (part, any of these in the stack), most specific first.
PARTS = [
    ("load generator (the bench's own clients)", ["bench_common::load", "bench_common::exchange", "hyper::client", "role::Client", "bench_health::", "bench_inbound::", "bench_outbound::"]),
    ("native baseline", ["bench_common::native"]),
    ("fuel read on a store without fuel (an error with a backtrace)", ["StoreOpaque::get_fuel"]),
    ("store drop: concurrent-state fibers (an error with a backtrace)", ["drop_fibers_and_futures"]),
    ("linear memory reset after the request (pooling allocator)", ["deallocate_memory", "reset_with_pagemap"]),
    ("store and instance drop, other", ["drop_in_place<wasmtime::runtime::store"]),
    ("instantiation", ["instantiate_async", "Instantiator", "InstancePre"]),
    ("guests' log lines (stdout)", ["guest_log::"]),
    ("key-value store (SQLite, Redis)", ["devhost::kv::", "sqlite3", "redis::"]),
    ("host calls: key-value, variables (devhost)", ["devhost::host::"]),
    ("host calls: wasi:http bodies and headers", ["wasmtime_wasi_http::", "wasmtime_wasi_io::"]),
    ("host calls: other WASI (clocks, random, streams)", ["wasmtime_wasi::"]),
    ("host calls: canonical ABI (lift, lower, resources)", ["func::host::", "resource_table", "func::typed"]),
    ("per-request set-up (Store, WASI context, routing)", ["run_component", "host_state", "Store<T>>::new", "Router::route"]),
    ("HTTP server (hyper, sockets)", ["hyper::", "devhost::server", "tcp_", "sock_", "__sys_"]),
    ("async runtime (tokio scheduling, idle)", ["tokio::runtime"]),
]


def samples(text):
    for block in text.split("\n\n"):
        lines = [line.strip() for line in block.strip().split("\n")[1:]]
        frames = [line.split(" ", 1)[1] for line in lines if " " in line]
        if frames:
            yield frames


# Guest code by what it does, from its functions' names (the components'
# name sections; stripped release builds show `function[N]` only).
GUEST = [
    ("JSON (serde_json)", ["serde_json", "serde_core", "serde.."]),
    ("signatures (HMAC, SHA, base64)", ["hmac", "sha1", "sha2", "Sha256", "base64", "digest"]),
    ("formatting and strings", ["core..fmt", "4core3fmt", "alloc..fmt", "alloc6string", "core3str", "core..str"]),
    ("allocation", ["dlmalloc", "dlfree", "alloc7raw_vec", "alloc..raw_vec", "__rust_alloc", "realloc"]),
]


def guest(frame):
    for name, markers in GUEST:
        if any(marker in frame for marker in markers):
            return f"guest code: {name}"
    return "guest code: other"


def part(frames):
    # Guest code: the sample's own frame is compiled Wasm, named by the dev
    # host's perf map or by the `.cwasm` file wasmtime mapped.
    if "wasm[" in frames[0] or ".cwasm)" in frames[0] or (".map)" in frames[0] and "perf-" in frames[0]):
        return guest(frames[0])
    stack = "\n".join(frames)
    for name, markers in PARTS:
        if any(marker in stack for marker in markers):
            return name
    return "other"


def main():
    counts = collections.Counter(part(frames) for frames in samples(sys.stdin.read()))
    total = sum(counts.values())
    for name, count in counts.most_common():
        print(f"{100 * count / total:5.1f}%  {name}")
    print(f"({total} samples)")


if __name__ == "__main__":
    main()
