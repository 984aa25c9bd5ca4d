"""Timing of the blob format on a small (60 kB / 20 files) and a production-size (5 MB / 150 files)
run: pack, MD5, unpack and streaming to a file. Run as ``python bench/bench_blob.py``."""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from archiver_resources import blob  # noqa: E402

PACKED_AT = datetime(2024, 10, 15, 16, 5, tzinfo=timezone.utc)
FIXED = ["boot.fcl", "known_boardreaders_list.fcl", "setup.fcl", "environment.fcl", "metadata.fcl",
         "settings.fcl", "ranks.fcl", "RunHistory.fcl", "RunHistory2.fcl", "schema.fcl"]


def fhicl_text(label: str, size: int) -> str:
    """FHiCL-looking text of about ``size`` characters (a few non-ASCII characters included)."""
    lines, total, i = [f"# {label} — processed configuration", "#####"], 0, 0
    while total < size:
        line = f"daq.fragment_receiver.{label}_param_{i:05d}: {i * 37 % 100003}  # µs"
        lines.append(line)
        total += len(line) + 1
        i += 1
    return "\n".join(lines) + "\n"


def make_run(total_bytes: int, n_files: int) -> dict[str, str]:
    names = FIXED + [f"component{i:03d}.fcl" for i in range(n_files - len(FIXED))]
    per_file = total_bytes // n_files
    return {name: fhicl_text(name.split(".")[0], per_file) for name in names[:n_files]}


def best_ms(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def bench(label: str, total_bytes: int, n_files: int, repeat: int) -> None:
    files = make_run(total_bytes, n_files)
    data = blob.pack(1234, files, PACKED_AT)
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "1234.blob"
        timings = {
            "pack": best_ms(lambda: blob.pack(1234, files, PACKED_AT), repeat),
            "md5": best_ms(lambda: blob.md5_hex(data), repeat),
            "unpack": best_ms(lambda: blob.unpack(data), repeat),
            "pack_to_file": best_ms(lambda: blob.pack_to_file(target, 1234, files, PACKED_AT),
                                    repeat),
        }
    shown = "  ".join(f"{name} {ms:7.2f} ms" for name, ms in timings.items())
    print(f"{label}: {len(files)} files, {len(data) / 1e6:.2f} MB blob  {shown}")


if __name__ == "__main__":
    bench("small run", 60_000, 20, repeat=50)
    bench("large run", 5_000_000, 150, repeat=10)
