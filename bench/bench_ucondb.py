"""Benchmark: put + get of a 5 MB blob through UconDBClient against the local UconDB server.

Target (issue): ≤ 100 ms per put+get on loopback. Run: ``python bench/bench_ucondb.py [-n N]``.
Not a test: it prints figures and exits non-zero only if the target is missed with --check.
"""

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from archiver_resources.ucondb.client import UconDBClient  # noqa: E402
from archiver_resources.ucondb.testing import start_local_ucondb  # noqa: E402

TARGET_MS = 100.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", "--iterations", type=int, default=20)
    parser.add_argument("--size", type=int, default=5_000_000, help="blob size in bytes")
    parser.add_argument("--check", action="store_true", help="exit 1 if the median misses 100 ms")
    args = parser.parse_args()
    blobs = [os.urandom(args.size) for _ in range(2)]
    with tempfile.TemporaryDirectory() as tmp, start_local_ucondb(tmp) as server, \
            UconDBClient(server.base_url, server.folder, "configuration", user=server.user,
                         password=server.password, timeout=30) as client:
        client.put_blob(0, b"warm-up: caches the digest challenge")
        put_ms, get_ms = [], []
        for i in range(args.iterations):
            data = blobs[i % 2][:-8] + i.to_bytes(8, "big")  # distinct bytes: no dedup shortcut
            t0 = time.perf_counter()
            client.put_blob(i + 1, data)
            t1 = time.perf_counter()
            blob = client.get_blob(i + 1)
            t2 = time.perf_counter()
            assert hashlib.md5(blob.data).digest() == hashlib.md5(data).digest()
            put_ms.append((t1 - t0) * 1000)
            get_ms.append((t2 - t1) * 1000)
    total = [p + g for p, g in zip(put_ms, get_ms)]
    print(f"local UconDB (SQLite, loopback), {args.size / 1e6:.1f} MB blob, "
          f"{args.iterations} iterations")
    for name, values in (("put", put_ms), ("get", get_ms), ("put+get", total)):
        p90 = statistics.quantiles(values, n=10)[-1] if len(values) > 1 else values[0]
        print(f"  {name:8s} median {statistics.median(values):7.1f} ms   p90 {p90:7.1f} ms   "
              f"max {max(values):7.1f} ms")
    print(f"  target: put+get ≤ {TARGET_MS:.0f} ms (median)")
    if args.check and statistics.median(total) > TARGET_MS:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
