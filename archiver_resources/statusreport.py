"""The status report: per-store run sets (filesystem, artdaqDB, UconDB) summarised with the legacy
text layout of the legacy tool, plus a markdown table, a plot and the store lag used by ``stores_in_sync``.

Pure set arithmetic over sorted numpy arrays (vectorised; gaps are computed as ranges and only the
printed ones are expanded), so 100k runs or a range of 10^9 with few runs stay fast.
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from archiver_resources.run_numbers import HighWaterMark, high_water_mark

RULE_EQ = "=" * 70
RULE_DASH = "-" * 70
LABEL_WIDTH = 17  # "  " + label padded to 17 → values start in column 20

STORES = ("filesystem", "artdaqdb", "ucondb")
STORE_QUERY_NAMES = {"filesystem": "Filesystem", "artdaqdb": "ArtdaqDB", "ucondb": "UconDB"}
STORE_TITLES = {
    "filesystem": "FILESYSTEM (Source)",
    "artdaqdb": "ARTDAQDB (Intermediate Storage)",
    "ucondb": "UCONDB (Long-term Storage)",
}

RunsInput = Optional[Iterable[int]]


# ---------------------------------------------------------------------------------------------
# Range and gap arithmetic: contiguous ranges and the gaps between them
# ---------------------------------------------------------------------------------------------

def as_sorted_runs(runs: Iterable[int] | np.ndarray | None) -> np.ndarray:
    """Sorted, de-duplicated int64 array of run numbers (O(n log n))."""
    if runs is None:
        return np.empty(0, dtype=np.int64)
    if isinstance(runs, np.ndarray):
        array = runs.astype(np.int64, copy=False)
    elif isinstance(runs, pd.Index):
        array = runs.to_numpy(dtype=np.int64)
    else:
        array = np.fromiter((int(r) for r in runs), dtype=np.int64)
    return np.unique(array)


def _range_bounds(sorted_runs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if sorted_runs.size == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    breaks = np.flatnonzero(np.diff(sorted_runs) != 1)
    starts = sorted_runs[np.concatenate(([0], breaks + 1))]
    ends = sorted_runs[np.concatenate((breaks, [sorted_runs.size - 1]))]
    return starts, ends


def contiguous_ranges(runs: Iterable[int] | np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of consecutive numbers as ``(first, last)`` pairs, ascending."""
    starts, ends = _range_bounds(as_sorted_runs(runs))
    return list(zip(starts.tolist(), ends.tolist()))


def gap_ranges(runs: Iterable[int] | np.ndarray) -> list[tuple[int, int]]:
    """The missing integers between min and max, as ``(first, last)`` ranges (never expanded)."""
    starts, ends = _range_bounds(as_sorted_runs(runs))
    return list(zip((ends[:-1] + 1).tolist(), (starts[1:] - 1).tolist()))


def gap_count(runs: Iterable[int] | np.ndarray) -> int:
    """How many integers between min and max are missing."""
    array = as_sorted_runs(runs)
    if array.size < 2:
        return 0
    return int(array[-1] - array[0] + 1 - array.size)


def _first_gaps(sorted_runs: np.ndarray, limit: int) -> list[int]:
    """The lowest ``limit`` missing integers, expanding gap ranges only as far as needed."""
    starts, ends = _range_bounds(sorted_runs)
    shown: list[int] = []
    for low, high in zip((ends[:-1] + 1).tolist(), (starts[1:] - 1).tolist()):
        take = min(high - low + 1, limit - len(shown))
        shown.extend(range(low, low + take))
        if len(shown) >= limit:
            break
    return shown


def _format_range(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


def format_ranges(runs: Iterable[int] | np.ndarray) -> str:
    """``a-b, c, …``; more than 10 ranges → first 5 `` ... `` last 5 `` (<K> ranges total)``."""
    ranges = contiguous_ranges(runs)
    if len(ranges) > 10:
        head = ", ".join(_format_range(a, b) for a, b in ranges[:5])
        tail = ", ".join(_format_range(a, b) for a, b in ranges[-5:])
        return f"{head} ... {tail} ({len(ranges)} ranges total)"
    return ", ".join(_format_range(a, b) for a, b in ranges)


def format_run_list(runs: Iterable[int] | np.ndarray, limit: int = 10) -> str:
    """A sorted run list in the gap format: more than ``limit`` → first ``limit`` `` ... (<K> gaps total)``."""
    array = as_sorted_runs(runs)
    if array.size == 0:
        return "None"
    text = ", ".join(str(r) for r in array[:limit].tolist())
    if array.size > limit:
        text += f" ... ({array.size} gaps total)"
    return text


def format_gaps(runs: Iterable[int] | np.ndarray, limit: int = 20) -> str:
    """Every missing integer between min and max; more than ``limit`` → first ``limit`` then
    `` ... (<K> gaps total)``; none → ``None``."""
    array = as_sorted_runs(runs)
    total = gap_count(array)
    if total == 0:
        return "None"
    text = ", ".join(str(r) for r in _first_gaps(array, limit))
    if total > limit:
        text += f" ... ({total} gaps total)"
    return text


def _difference(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    return np.setdiff1d(left, right, assume_unique=True)


# ---------------------------------------------------------------------------------------------
# Report data
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class StoreSummary:
    """One store's runs and the figures the report prints about them."""

    name: str  # "filesystem" | "artdaqdb" | "ucondb"
    title: str
    location: tuple[tuple[str, str], ...]  # (label, value) lines printed before the figures
    runs: np.ndarray = field(repr=False)  # sorted unique int64

    @property
    def total(self) -> int:
        return int(self.runs.size)

    @property
    def min_run(self) -> Optional[int]:
        return int(self.runs[0]) if self.runs.size else None

    @property
    def max_run(self) -> Optional[int]:
        return int(self.runs[-1]) if self.runs.size else None

    @property
    def ranges_count(self) -> int:
        return len(_range_bounds(self.runs)[0])

    @property
    def gaps_count(self) -> int:
        return gap_count(self.runs)

    def ranges(self) -> list[tuple[int, int]]:
        return contiguous_ranges(self.runs)

    def gaps(self) -> list[tuple[int, int]]:
        return gap_ranges(self.runs)


@dataclass(frozen=True)
class DagsterStatus:
    """What Dagster knows: failed partitions per asset key, and failed checks (``asset:check``) →
    the partition keys they failed on (an unpartitioned check: one key such as ``-``). Empty
    lists are not shown."""

    failed_partitions: Mapping[str, Sequence[str]] = field(default_factory=dict)
    failed_checks: Mapping[str, Sequence[str]] = field(default_factory=dict)
    #: store name → runs Dagster records as archived that the store no longer holds
    lost_runs: Mapping[str, Sequence[int]] = field(default_factory=dict)


@dataclass(frozen=True)
class StageState:
    """Legacy-style state of one stage: last contiguous run and the failure log's runs."""

    last_contiguous: int = 0
    failed_runs: frozenset[int] = frozenset()


@dataclass(frozen=True)
class StateComparison:
    """Legacy state of both stages, compared with the stores for the ``--compare-state`` section."""

    import_state: StageState = StageState()
    migration_state: StageState = StageState()


@dataclass(frozen=True)
class QueryFailure:
    """A store query that failed: the report stops after this line, as the legacy
    tool's did."""

    store: str
    message: str

    def line(self) -> str:
        return f"✗ {STORE_QUERY_NAMES[self.store]} query failed: {self.message}"


@dataclass(frozen=True)
class ReportLine:
    """A line of the report and the log level the legacy tool used for it."""

    text: str
    level: int = logging.INFO


@dataclass
class StatusReport:
    """The built report. ``lines()`` is the legacy text; ``records()`` adds the log levels."""

    stores: dict[str, StoreSummary]
    failure: Optional[QueryFailure] = None
    dagster: Optional[DagsterStatus] = None
    state_comparison: Optional[StateComparison] = None
    max_run_jump: Optional[int] = None  # app.max_run_number_jump; None: not looked at

    def far_above(self) -> HighWaterMark:
        """Runs of any store far above the others (``run_numbers``); none when not looked at."""
        if self.max_run_jump is None or not self.complete:
            return HighWaterMark(None)
        every = np.unique(np.concatenate([self.stores[n].runs for n in STORES]))
        return high_water_mark(every.tolist(), self.max_run_jump)

    @property
    def complete(self) -> bool:
        return self.failure is None

    def lines(self) -> list[str]:
        return [record.text for record in self.records()]

    def text(self) -> str:
        return "\n".join(self.lines()) + "\n"

    def records(self) -> list[ReportLine]:
        out = [ReportLine(RULE_EQ), ReportLine("RUN RECORD ARCHIVER - STATUS REPORT"),
               ReportLine(RULE_EQ), ReportLine("Querying data sources...")]
        for name in STORES:
            if self.failure is not None and self.failure.store == name:
                out.append(ReportLine(self.failure.line(), logging.ERROR))
                return out
            out.append(ReportLine(f"✓ {STORE_QUERY_NAMES[name]} query complete"))
        out += _title_block("DATA SOURCE SUMMARY")
        for name in STORES:
            out += _store_section(self.stores[name])
        if self.state_comparison is not None:
            out += _state_comparison_section(self.state_comparison, self.stores)
        if self.dagster is not None:
            out += _dagster_section(self.dagster)
        out += _title_block("RECOMMENDATIONS")
        for number, (text, level) in enumerate(recommendations(self), start=1):
            out.append(ReportLine(f"{number}. {text}", level))
        out += _title_block("END OF STATUS REPORT")
        return out

    def log(self, logger: logging.Logger) -> None:
        """Write the report through ``logger``, one record per line, at the legacy levels."""
        for record in self.records():
            logger.log(record.level, record.text)

    def summary_frame(self) -> pd.DataFrame:
        return summary_frame(self)

    def markdown_table(self) -> str:
        return markdown_table(self)


# ---------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------

_URI_PASSWORD = re.compile(r"(//[^/:@\s]*:)[^@/\s]*@")


def _hide_password(uri: str) -> str:
    return _URI_PASSWORD.sub(r"\1***@", uri)


def _locations(locations: Mapping[str, str]) -> dict[str, tuple[tuple[str, str], ...]]:
    folder = locations.get("ucondb_folder", "")
    obj = locations.get("ucondb_object", "")
    return {
        "filesystem": (("Location", str(locations.get("filesystem", ""))),),
        "artdaqdb": (("Database URI", _hide_password(str(locations.get("artdaqdb", "")))),),
        "ucondb": (("Server URL", _hide_password(str(locations.get("ucondb", "")))),
                   ("Folder/Object", f"{folder}/{obj}")),
    }


def build_report(filesystem: RunsInput, artdaqdb: RunsInput, ucondb: RunsInput, *,
                 locations: Mapping[str, str], errors: Optional[Mapping[str, str]] = None,
                 dagster: Optional[DagsterStatus] = None,
                 state_comparison: Optional[StateComparison] = None,
                 max_run_jump: Optional[int] = None) -> StatusReport:
    """Summarise the three stores' run sets.

    ``locations`` keys: ``filesystem`` (run-records dir), ``artdaqdb`` (database URI; a password in
    it is masked), ``ucondb`` (server URL), ``ucondb_folder``, ``ucondb_object``. A store whose
    input is ``None`` counts as a failed query with the message ``errors[store]``; the report then
    stops at that store's ``✗ … query failed`` line, like the legacy tool. ``max_run_jump``:
    recommend checking runs numbered far above the others (``run_numbers``).
    """
    errors = errors or {}
    inputs = {"filesystem": filesystem, "artdaqdb": artdaqdb, "ucondb": ucondb}
    where = _locations(locations)
    stores: dict[str, StoreSummary] = {}
    failure = None
    for name in STORES:
        if inputs[name] is None:
            failure = QueryFailure(name, _hide_password(str(errors.get(name, "no result"))))
            break
        stores[name] = StoreSummary(name, STORE_TITLES[name], where[name],
                                    as_sorted_runs(inputs[name]))
    return StatusReport(stores=stores, failure=failure, dagster=dagster,
                        state_comparison=state_comparison, max_run_jump=max_run_jump)


# ---------------------------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------------------------

def _label(label: str, value: object) -> str:
    return f"  {label + ':':<{LABEL_WIDTH}}{value}"


def _title_block(title: str) -> list[ReportLine]:
    return [ReportLine(""), ReportLine(RULE_EQ), ReportLine(title), ReportLine(RULE_EQ)]


def _store_section(store: StoreSummary) -> list[ReportLine]:
    out = [ReportLine(""), ReportLine(store.title), ReportLine(RULE_DASH)]
    out += [ReportLine(_label(label, value)) for label, value in store.location]
    out.append(ReportLine(_label("Total Runs", store.total)))
    if store.total == 0:
        out.append(ReportLine(_label("Status", "No runs found")))
        return out
    out.append(ReportLine(_label("Range", f"{store.min_run} to {store.max_run}")))
    out.append(ReportLine(_label("Contiguous", format_ranges(store.runs))))
    out.append(ReportLine(_label("Gaps", format_gaps(store.runs))))
    return out


def _stage_comparison(title: str, state: StageState, source: np.ndarray, target: np.ndarray,
                      target_label: str, missing_label: str, stage_word: str) -> list[ReportLine]:
    out = [ReportLine(""), ReportLine(title), ReportLine(RULE_DASH)]
    last = state.last_contiguous
    out.append(ReportLine(f"  Last Contiguous Run: {last}"))
    if last > 0:
        missing = _difference(source[source <= last], target)
        if missing.size:
            out.append(ReportLine(f"  {missing_label}{missing.size} run(s) before last contiguous "
                                  f"({format_run_list(missing)})", logging.WARNING))
        else:
            out.append(ReportLine(f"  Status:              All expected runs present in {target_label}"))
        newer = source[source > last]
        if newer.size:
            out.append(ReportLine(f"  New Runs Available:  {newer.size} run(s) since last state "
                                  f"update (range: {newer[0]}-{newer[-1]})"))
    else:
        out.append(ReportLine(f"  Status:              No {stage_word} state recorded"))
    failed = as_sorted_runs(state.failed_runs)
    if failed.size:
        out.append(ReportLine(f"  Failed Runs:         {failed.size} run(s) logged as failed "
                              f"({format_run_list(failed)})", logging.WARNING))
    return out


def _state_comparison_section(comparison: StateComparison,
                              stores: Mapping[str, StoreSummary]) -> list[ReportLine]:
    fs, adb, ucon = (stores[n].runs for n in STORES)
    out = _title_block("STATE COMPARISON")
    out += _stage_comparison("IMPORT STAGE STATE", comparison.import_state, fs, adb,
                             "ArtdaqDB", "Missing in ArtdaqDB:  ", "import")
    out += _stage_comparison("MIGRATION STAGE STATE", comparison.migration_state, adb, ucon,
                             "UconDB", "Missing in UconDB:   ", "migration")
    return out


def _partition_list(keys: Sequence[str], limit: int = 10) -> str:
    ordered = sorted(keys, key=lambda k: (0, int(k)) if str(k).isdigit() else (1, str(k)))
    text = ", ".join(str(k) for k in ordered[:limit])
    if len(ordered) > limit:
        text += f" ... ({len(ordered)} total)"
    return text


def _dagster_section(status: DagsterStatus) -> list[ReportLine]:
    out = _title_block("DAGSTER")
    out += [ReportLine(""), ReportLine("FAILED PARTITIONS"), ReportLine(RULE_DASH)]
    failed_assets = {a: keys for a, keys in status.failed_partitions.items() if keys}
    if not failed_assets:
        out.append(ReportLine(_label("Status", "No failed partitions")))
    for asset, keys in sorted(failed_assets.items()):
        out.append(ReportLine(f"  {asset}: {len(keys)} partition(s) ({_partition_list(keys)})",
                              logging.WARNING))
    out += [ReportLine(""), ReportLine("FAILED CHECKS"), ReportLine(RULE_DASH)]
    failed_checks = {c: keys for c, keys in status.failed_checks.items() if keys}
    if not failed_checks:
        out.append(ReportLine(_label("Status", "No failed checks")))
    for check, keys in sorted(failed_checks.items()):
        out.append(ReportLine(f"  {check}: {len(keys)} failure(s) ({_partition_list(keys)})",
                              logging.WARNING))
    lost = {store: runs for store, runs in status.lost_runs.items() if runs}
    if lost:
        out += [ReportLine(""), ReportLine("RUNS A STORE LOST"), ReportLine(RULE_DASH)]
    for store, runs in sorted(lost.items()):
        out.append(ReportLine(f"  {store}: {len(runs)} run(s) Dagster records as archived are "
                              f"missing ({format_run_list(as_sorted_runs(runs))})",
                              logging.WARNING))
    return out


def recommendations(report: StatusReport) -> list[tuple[str, int]]:
    """Numbered-list entries (text, log level) in the legacy tool's order
    (import, migrate, deleted, cleaned up); then runs far above the others and Dagster backfills."""
    fs, adb, ucon = (report.stores[n].runs for n in STORES)
    out: list[tuple[str, int]] = []
    to_import = _difference(fs, adb)
    if to_import.size:
        out.append((f"Run IMPORTER: {to_import.size} run(s) on filesystem not in artdaqDB "
                    f"(range: {to_import[0]}-{to_import[-1]})", logging.INFO))
    to_migrate = _difference(adb, ucon)
    if to_migrate.size:
        out.append((f"Run MIGRATOR: {to_migrate.size} run(s) in artdaqDB not in UconDB "
                    f"(range: {to_migrate[0]}-{to_migrate[-1]})", logging.INFO))
    deleted = _difference(adb, fs)
    if deleted.size:
        out.append((f"WARNING: {deleted.size} run(s) in artdaqDB but not on filesystem "
                    f"(may have been deleted)", logging.WARNING))
    cleaned = _difference(ucon, adb)
    if cleaned.size:
        out.append((f"INFO: {cleaned.size} run(s) in UconDB but not in artdaqDB "
                    f"(may have been cleaned up from intermediate storage)", logging.INFO))
    far = report.far_above()
    for line in far.describe(report.max_run_jump or 0):
        out.append((f"WARNING: {line}", logging.WARNING))
    if report.dagster is not None:
        for store, runs in sorted(report.dagster.lost_runs.items()):
            if len(runs):
                out.append((f"RECONCILE: {len(runs)} run(s) Dagster records as archived are not "
                            f"in {store} any more: --reconcile (or the daily archive_status) "
                            f"marks them failed so they are archived again", logging.WARNING))
        for asset, keys in sorted(report.dagster.failed_partitions.items()):
            if keys:
                out.append((f"BACKFILL {asset}: {len(keys)} failed partition(s) "
                            f"(Materialize failed and missing)", logging.WARNING))
    if not out:
        out.append(("All systems are synchronized - no action needed", logging.INFO))
    return out


# ---------------------------------------------------------------------------------------------
# Lag, table, plot
# ---------------------------------------------------------------------------------------------

def store_lag(report: StatusReport) -> dict[str, int]:
    """Runs the next store lacks: ``artdaqdb_behind_filesystem`` = |F − A|,
    ``ucondb_behind_artdaqdb`` = |A − U|, and the differences of the highest runs."""
    fs, adb, ucon = (report.stores[n].runs for n in STORES)

    def top(a: np.ndarray) -> int:
        return int(a[-1]) if a.size else 0

    return {
        "artdaqdb_behind_filesystem": int(_difference(fs, adb).size),
        "ucondb_behind_artdaqdb": int(_difference(adb, ucon).size),
        "artdaqdb_max_run_behind": max(0, top(fs) - top(adb)),
        "ucondb_max_run_behind": max(0, top(adb) - top(ucon)),
    }


def summary_frame(report: StatusReport) -> pd.DataFrame:
    """One row per store: total, min, max, ranges, gaps, lag (runs the upstream store has and this
    one lacks; none for the filesystem)."""
    lag = store_lag(report)
    lags = {"filesystem": None, "artdaqdb": lag["artdaqdb_behind_filesystem"],
            "ucondb": lag["ucondb_behind_artdaqdb"]}
    rows = []
    for name in STORES:
        s = report.stores[name]
        rows.append({"store": STORE_QUERY_NAMES[name], "total": s.total, "min": s.min_run,
                     "max": s.max_run, "ranges": s.ranges_count, "gaps": s.gaps_count,
                     "lag": lags[name]})
    return pd.DataFrame(rows).astype({"min": "Int64", "max": "Int64", "lag": "Int64"})


def markdown_table(report: StatusReport) -> str:
    """The summary frame as a GitHub markdown table (no ``tabulate`` dependency)."""
    frame = summary_frame(report)
    header = "| Store | Total | Min | Max | Ranges | Gaps | Lag |"
    rule = "|---|---:|---:|---:|---:|---:|---:|"
    rows = []
    for row in frame.itertuples(index=False):
        cells = [row.store] + ["-" if pd.isna(v) else str(int(v))
                               for v in (row.total, row.min, row.max, row.ranges, row.gaps, row.lag)]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join([header, rule, *rows]) + "\n"


PLOT_MAX_BARS = 1500  # above this many ranges per store, bars are merged at ~pixel resolution


def _exact_bars(runs: np.ndarray) -> tuple[list, list]:
    starts, ends = _range_bounds(runs)
    present = list(zip((starts - 0.5).tolist(), (ends - starts + 1.0).tolist()))
    gap_starts, gap_ends = ends[:-1] + 1, starts[1:] - 1
    gaps = list(zip((gap_starts - 0.5).tolist(), (gap_ends - gap_starts + 1.0).tolist()))
    return present, gaps


def _binned_bars(runs: np.ndarray, bins: int) -> tuple[list, list]:
    """Bins of equal run width over [min, max]: a bin fully covered is "present", any other bin
    holds at least one gap. Equal neighbours are merged, so at most ``bins`` bars are drawn."""
    low, high = int(runs[0]), int(runs[-1])
    width = -(-(high - low + 1) // bins)
    edges = np.arange(low, high + width + 1, width, dtype=np.int64)
    counts = np.bincount((runs - low) // width, minlength=edges.size - 1)[: edges.size - 1]
    capacity = np.minimum(edges[1:], high + 1) - edges[:-1]
    full = counts == capacity
    change = np.flatnonzero(np.diff(full.astype(np.int8))) + 1
    first = np.concatenate(([0], change))
    last = np.concatenate((change, [full.size])) - 1
    present, gaps = [], []
    for a, b in zip(first.tolist(), last.tolist()):
        start = int(edges[a])
        stop = min(int(edges[b + 1]), high + 1)
        (present if full[a] else gaps).append((start - 0.5, float(stop - start)))
    return present, gaps


def plot_png(report: StatusReport, *, width_inches: float = 10.0, dpi: int = 100) -> bytes:
    """PNG of runs per store over run number: one band per store drawn as its contiguous ranges,
    with the gaps between min and max highlighted. Ranges, not points, so 100k runs stay fast;
    above ``PLOT_MAX_BARS`` ranges a store is drawn at ~pixel resolution (a bin holding any gap is
    highlighted as a gap)."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure  # no pyplot: no global figure registry

    figure = Figure(figsize=(width_inches, 2.6), dpi=dpi)
    axes = figure.add_subplot(1, 1, 1)
    labels = []
    for row, name in enumerate(reversed(STORES)):
        store = report.stores[name]
        labels.append(f"{STORE_QUERY_NAMES[name]} ({store.total})")
        if not store.total:
            continue
        if store.ranges_count > PLOT_MAX_BARS:
            present, gaps = _binned_bars(store.runs, PLOT_MAX_BARS)
        else:
            present, gaps = _exact_bars(store.runs)
        axes.broken_barh(present, (row - 0.35, 0.7), facecolors="tab:blue", linewidth=0)
        if gaps:
            axes.broken_barh(gaps, (row - 0.35, 0.7), facecolors="tab:red", alpha=0.7,
                             linewidth=0)
    axes.set_yticks(range(len(STORES)))
    axes.set_yticklabels(labels)
    axes.set_ylim(-0.6, len(STORES) - 0.4)
    axes.set_xlabel("run number")
    axes.set_title("Runs per store (blue: present, red: gaps)")
    axes.ticklabel_format(axis="x", style="plain", useOffset=False)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
