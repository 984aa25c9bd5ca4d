"""Shared pieces of the benchmark harness: a throw-away archiving environment (run records, a
local UconDB server, a filesystemdb store, a legacy config.yaml), the machine description, the
result rows and the Markdown table written to docs/performance.md."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

FOLDER = "bench_runs"
PASSWORD_ENV = "BENCH_UCONDB_PASSWORD"


# ---------------------------------------------------------------------------------------------
# Environment
# ---------------------------------------------------------------------------------------------

@dataclass
class Stores:
    """One fresh pair of stores (artdaqDB filesystemdb + local UconDB) and the config naming them."""

    root: Path
    run_records: Path
    artdaqdb_uri: str
    config_path: Path
    ucondb: object

    def stop(self) -> None:
        try:
            self.ucondb.stop()
        except Exception:  # already stopped
            pass


def write_config(root: Path, ucondb, *, run_records: Path, artdaqdb_uri: str) -> Path:
    """A legacy-format config.yaml for the benchmark stores (password through the environment)."""
    from archiver_resources.testing.legacy_config import write_legacy_config

    return write_legacy_config(root, ucondb, run_records=run_records, artdaqdb_uri=artdaqdb_uri,
                               folder=FOLDER, password_env=PASSWORD_ENV, timeout_seconds=60,
                               retries=1)


@contextmanager
def fresh_stores(parent: Path, run_records: Path, name: str) -> Iterator[Stores]:
    """Empty artdaqDB + a new local UconDB server under ``parent/name``; stopped afterwards."""
    from archiver_resources.ucondb.testing import start_local_ucondb

    root = parent / name
    root.mkdir(parents=True, exist_ok=True)
    server = start_local_ucondb(root / "ucondb", folder=FOLDER)
    os.environ[PASSWORD_ENV] = server.password
    uri = f"filesystemdb://{root / 'artdaqdb' / 'bench_db_archive'}"
    stores = Stores(root=root, run_records=run_records, artdaqdb_uri=uri,
                    config_path=write_config(root, server, run_records=run_records,
                                             artdaqdb_uri=uri),
                    ucondb=server)
    try:
        yield stores
    finally:
        stores.stop()


@contextmanager
def scratch_dir(keep: bool = False) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="archiver-bench-"))
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------

@dataclass
class Row:
    """One line of the table: a figure, the baseline measured in the same invocation, a target."""

    key: str
    what: str
    figure: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""
    verdict: str = ""  # "met" | "missed" | "" (no target)
    note: str = ""
    samples: list = field(default_factory=list)


def spread(values) -> str:
    """`median (min–max, n=k)` of a list of numbers, compactly."""
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    med = statistics.median(values)
    if len(values) == 1:
        return _num(med)
    return f"{_num(med)} ({_num(min(values))}–{_num(max(values))}, n={len(values)})"


def _num(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def verdict(ok: Optional[bool]) -> str:
    return "" if ok is None else ("met" if ok else "missed")


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


# ---------------------------------------------------------------------------------------------
# Machine
# ---------------------------------------------------------------------------------------------

def machine_description() -> dict:
    """CPU, cores, RAM, disk, Python and Dagster versions, load and date of this invocation."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    try:
        import dagster

        dagster_version = dagster.__version__
    except ImportError:
        dagster_version = "not installed"
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "ram": ram,
        "disk": _disk_of(tempfile.gettempdir()),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "dagster": dagster_version,
        "load": _load(),
        "fsync": _fsync_latency(tempfile.gettempdir()),
    }


def _fsync_latency(directory: str, count: int = 20) -> str:
    """Median time of a 4 kB write + fsync: what every SQLite commit of the Dagster instance and
    every filesystemdb commit waits for."""
    times = []
    fd, path = tempfile.mkstemp(dir=directory, prefix=".fsync-probe-")
    try:
        for _ in range(count):
            t0 = time.perf_counter()
            os.write(fd, b"x" * 4096)
            os.fsync(fd)
            times.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        os.unlink(path)
    return f"{statistics.median(times) * 1000:.1f} ms"


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def _disk_of(path: str) -> str:
    """Block device under ``path`` and whether the kernel calls it rotational."""
    try:
        out = subprocess.run(["df", "--output=source", path], capture_output=True, text=True,
                             timeout=5).stdout.split()
        source = out[-1] if out else "?"
        dev = re.sub(r"^/dev/", "", source)
        base = re.sub(r"p?\d+$", "", dev) if not Path(f"/sys/block/{dev}").exists() else dev
        rot = Path(f"/sys/block/{base}/queue/rotational").read_text().strip()
        kind = "virtio" if base.startswith("vd") else ("NVMe" if base.startswith("nvme") else "")
        return f"{source} ({kind + ' ' if kind else ''}block device, kernel rotational={rot})"
    except Exception:  # best effort only
        return "unknown"


# ---------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------

BEGIN = "<!-- bench:latest:begin -->"
END = "<!-- bench:latest:end -->"
PREV_BEGIN = "<!-- bench:previous:begin -->"
PREV_END = "<!-- bench:previous:end -->"


def render_table(rows: list[Row], machine: dict, mode: str, elapsed_s: float) -> str:
    lines = [
        f"Mode `{mode}`, {machine['date']}, harness wall time {elapsed_s:.0f} s.",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['ram']} RAM, "
        f"disk {machine['disk']}, {machine['os']}, Python {machine['python']}, "
        f"Dagster {machine['dagster']}; 4 kB write+fsync median {machine.get('fsync', 'n/a')}; "
        f"load average at the end {machine['load']} (other jobs shared the machine).",
        "",
        "| # | measurement | figure | baseline (same invocation) | ratio | target | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [row.key, row.what, row.figure, row.baseline, row.ratio, row.target,
                 row.verdict]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    notes = [row for row in rows if row.note]
    if notes:
        lines.append("")
        for row in notes:
            lines.append(f"* {row.key}: {row.note}")
    return "\n".join(lines) + "\n"


def write_performance_md(path: Path, table: str, preamble: str) -> None:
    """Replace the table between the ``latest`` markers; the table that was there becomes the
    ``previous`` block. Hand-written text around the markers is kept as it is."""
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if BEGIN not in old or END not in old:
        old = (preamble.rstrip() + "\n\n" + BEGIN + "\n" + END + "\n\n## Previous measurement\n\n"
               + PREV_BEGIN + "\n(none yet)\n" + PREV_END + "\n")
    head, rest = old.split(BEGIN, 1)
    previous, after = rest.split(END, 1)
    text = head + BEGIN + "\n" + table.strip() + "\n" + END + after
    if previous.strip() and PREV_BEGIN in text and PREV_END in text:
        before, rest = text.split(PREV_BEGIN, 1)
        _, tail = rest.split(PREV_END, 1)
        text = before + PREV_BEGIN + "\n" + previous.strip() + "\n" + PREV_END + tail
    path.write_text(text, encoding="utf-8")
