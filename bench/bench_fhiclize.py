"""Benchmark of the fhiclize step: converters + prepare_run (+ hashes, + blob packing when
``archiver_resources.blob.pack`` exists) on a ~60 kB, 20-file run record. Target: < 5 ms per run.

Run: ``python bench/bench_fhiclize.py [iterations]``. Inputs are generated inline.
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import datetime, timezone

from archiver_resources.fhiclize import CONVERTERS, GENERATORS, hashes_text, prepare_run

try:
    from archiver_resources.blob import pack
except ImportError:  # blob module not there yet: time fhiclize alone
    pack = None

RUN = 12345
N_PROCESSES = 13
SCHEMA = 'run_history: [{collection: RunHistory pattern: \'(.*/)(.*)(\\.fcl$)\'}]\n'


def _metadata(labels: list[str]) -> str:
    lines = ["Config name: standard_bench"]
    lines += [f"Component #{i}: {label}" for i, label in enumerate(labels)]
    lines += ["DAQInterface directory: evb01.example.org:/daq/DAQInterface",
              "DAQInterface logfile: evb01.example.org:/daq/log/DAQInterface/partition1.log", "",
              "# Two possible sets of fields provided below for code info: ",
              "# <package version> <BuildInfo build time (if available)>", ""]
    for package in ("DAQInterface", "sbndaq", "sbndaq-artdaq", "sbndaq-artdaq-core", "artdaq",
                    "artdaq-core", "artdaq-utilities", "artdaq-mpich-plugin", "TRACE"):
        lines += [f"{package} commit/version: v1_10_03 01-Oct-2024 09:12:44 UTC v1_10_03", ""]
    lines += ["process management method: direct", "", "", "boardreader logfiles: "]
    lines += [f"host-{label}:/daq/log/boardreader/{label}-host-{5200 + i}.log"
              for i, label in enumerate(labels)]
    lines += ["", "", "eventbuilder logfiles: ",
              "evb01:/daq/log/eventbuilder/EventBuilder1-evb01-5235.log", "",
              "DAQInterface start time: Tue Oct 15 14:02:11 UTC 2024", "",
              "DAQInterface stop time: Tue Oct 15 16:02:48 UTC 2024"]
    return "\n".join(lines) + "\n"


def _boot(labels: list[str]) -> str:
    lines = ["DAQ setup script: /daq/setup_daq.sh", "debug level: 1", "",
             "Subsystem id: 1", "Subsystem destination: 2", "", "Subsystem id: 2",
             "Subsystem source: 1", ""]
    for i, label in enumerate(labels):
        lines += [f"BoardReader host: host-{label}", f"BoardReader port: {5200 + i}",
                  f"BoardReader label: {label}", "BoardReader subsystem: 1", ""]
    lines += ["EventBuilder host: evb01", "EventBuilder port: 5235",
              "EventBuilder label: EventBuilder1", "EventBuilder subsystem: 2"]
    return "\n".join(lines) + "\n"


def _process_fcl(label: str) -> str:
    body = [f"# {label}: processed FHiCL document", "daq: {", "  fragment_receiver: {",
            f'    generator: "TpcGen" board_id: {len(label)}']
    body += [f"    channel_{i:03d}: {{ threshold: {i * 7 % 97} pedestal: {i * 13 % 211} }}"
             for i in range(75)]
    body += ["  }", '  metrics: { file: { metricPluginType: "file" level: 3 } }', "}"]
    return "\n".join(body) + "\n"


def run_record() -> dict[str, str]:
    """About 60 kB in 20 files: the 7 fixed .txt files and 13 process .fcl documents."""
    labels = [f"tpc{i:02d}" for i in range(N_PROCESSES - 1)] + ["EventBuilder1"]
    files = {
        "metadata.txt": _metadata(labels),
        "boot.txt": _boot(labels),
        "known_boardreaders_list.txt": "".join(
            f"{label} host-{label} {5200 + i} 1 \"opt {i}\"\n" for i, label in enumerate(labels)) * 3,
        "settings.txt": "".join(f"setting_{i} (MB): {i}\nlist_{i}: [a-b, \"c\", 'd']\n"
                                for i in range(20)),
        "setup.txt": "".join(f'source /software/setup_{i}.sh && export V{i}="x\\y"\n'
                             for i in range(60)),
        "environment.txt": "".join(f"export DAQINTERFACE_VAR_{i}=\"/daq/path/{i}\"\n"
                                   for i in range(40)),
        "ranks.txt": "host port label subsystem rank\n\n" + "".join(
            f"host-{label} {5200 + i} {label} 1 {i}\n" for i, label in enumerate(labels)),
    }
    files.update({f"{label}.fcl": _process_fcl(label) for label in labels})
    return files


def _one_run(files: dict[str, str]) -> int:
    enabled = frozenset(CONVERTERS) | GENERATORS
    prepared = prepare_run(RUN, files, enabled=enabled, schema_text=SCHEMA)
    hashes_text(prepared.insert_files)
    if pack is not None:
        return len(pack(RUN, prepared.insert_files, datetime(2024, 10, 15, 16, 5, tzinfo=timezone.utc)))
    return sum(len(text) for text in prepared.insert_files.values())


def main(iterations: int = 300) -> None:
    files = run_record()
    size = sum(len(text.encode("utf-8")) for text in files.values())
    _one_run(files)  # warm-up (regex compilation, imports)
    timings = []
    for _ in range(iterations):
        start = time.perf_counter()
        _one_run(files)
        timings.append((time.perf_counter() - start) * 1000.0)
    timings.sort()
    print(f"run record: {len(files)} files, {size / 1000:.1f} kB; "
          f"blob packing {'included' if pack else 'not available'}")
    print(f"converters + prepare_run + hashes{' + pack' if pack else ''}: "
          f"median {statistics.median(timings):.2f} ms, p95 {timings[int(0.95 * len(timings))]:.2f} ms "
          f"per run ({iterations} runs; target < 5 ms)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
