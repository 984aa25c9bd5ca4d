"""Deterministic generator of realistic DAQInterface run records (demo, tests, benchmarks).

Same (run, profile, seed, options) → byte-identical files with identical mtimes; no wall clock.
"""

from __future__ import annotations

import argparse
import calendar
import datetime as _dt
import filecmp
import os
import random
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterable, Iterator, Optional, Sequence, Union

__all__ = [
    "PROFILES",
    "Profile",
    "format_daq_date",
    "generate_run_record",
    "generate_run_records",
    "main",
    "mark_finished",
    "parse_profile",
    "parse_runs",
    "run_times",
    "same_run_record",
]

MtimeArg = Union[None, int, float, _dt.datetime]

# Dates: fixed origin, one run every ~90 minutes; no wall clock anywhere.
_EPOCH_ORIGIN = calendar.timegm((2023, 10, 2, 8, 0, 0))
_RUN_SPACING_SECONDS = 5400
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_STOP_RE = re.compile(r"^DAQInterface stop time:\s*(.*)$", re.MULTILINE)

KIND_BOARDREADER = "BoardReader"
KIND_EVENTBUILDER = "EventBuilder"
KIND_DATALOGGER = "DataLogger"
KIND_DISPATCHER = "Dispatcher"
KIND_ROUTINGMANAGER = "RoutingManager"
_LOGDIR_BY_KIND = {
    KIND_BOARDREADER: "boardreader",
    KIND_EVENTBUILDER: "eventbuilder",
    KIND_ROUTINGMANAGER: "routingmanager",
    KIND_DATALOGGER: "datalogger",
    KIND_DISPATCHER: "dispatcher",
}


# --------------------------------------------------------------------------------------------
# Profiles


@dataclass(frozen=True)
class Profile:
    """How big a run record is: process counts and per-file size targets (bytes)."""

    name: str
    boardreaders: int
    eventbuilders: int
    dataloggers: int
    dispatchers: int
    routingmanagers: int
    boardreader_bytes: tuple[int, int]
    other_bytes: tuple[int, int]
    boot_lists_boardreaders: bool = False
    subsystems: bool = True
    packages: int = 4
    spare_boardreaders: int = 4


PROFILES: dict[str, Profile] = {
    # 7 fixed files + 3 FHiCL files ≈ 20 kB
    "small": Profile("small", 1, 1, 1, 0, 0, (8_000, 9_500), (2_600, 3_400),
                     boot_lists_boardreaders=True, subsystems=False, packages=2, spare_boardreaders=2),
    # 7 fixed files + 13 FHiCL files ≈ 60 kB
    "typical": Profile("typical", 8, 2, 1, 1, 1, (3_600, 5_600), (2_900, 3_900), packages=4),
    # 7 fixed files + 143 FHiCL files ≈ 5 MB
    "large": Profile("large", 120, 16, 4, 2, 1, (24_000, 52_000), (5_000, 14_000), packages=8,
                     spare_boardreaders=24),
}


def parse_profile(profile: str) -> Profile:
    """Return the named profile; `huge:<MB>` gives four boardreaders big enough to reach <MB>."""
    if profile in PROFILES:
        return PROFILES[profile]
    match = re.fullmatch(r"huge:(\d+(?:\.\d+)?)", profile)
    if not match:
        raise ValueError(f"unknown profile {profile!r}: use small, typical, large or huge:<MB>")
    total = int(float(match.group(1)) * 1_000_000)
    per_reader = max(10_000, (total - 30_000) // 4)
    return Profile(profile, 4, 1, 1, 0, 0, (per_reader, per_reader), (3_000, 3_000), packages=3)


# --------------------------------------------------------------------------------------------
# Dates


def format_daq_date(when: Union[int, float, _dt.datetime]) -> str:
    """Format like `date --utc` (C locale): `Tue Oct 15 14:02:11 UTC 2024`, day space-padded."""
    if isinstance(when, _dt.datetime):
        if when.tzinfo is not None:
            when = when.astimezone(_dt.timezone.utc).replace(tzinfo=None)
        t = when
    else:
        t = _dt.datetime(1970, 1, 1) + _dt.timedelta(seconds=int(when))
    return (f"{_DAYS[t.weekday()]} {_MONTHS[t.month - 1]} {t.day:>2} "
            f"{t.hour:02d}:{t.minute:02d}:{t.second:02d} UTC {t.year}")


def run_times(run: int) -> tuple[int, int]:
    """(start, stop) epoch seconds of a run, derived from the run number only (not the seed)."""
    rng = random.Random(f"dates:{run}")
    start = _EPOCH_ORIGIN + run * _RUN_SPACING_SECONDS + rng.randint(0, 1800)
    stop = start + rng.randint(300, 4 * 3600)
    return start, stop


# --------------------------------------------------------------------------------------------
# Processes


@dataclass
class _Process:
    kind: str
    label: str
    host: str
    port: int
    subsystem: str
    rank: int = 0
    flavour: str = ""  # boardreader flavour: trigger, tpc, pmt, crt
    target_bytes: int = 0


@dataclass
class _Plan:
    run: int
    seed: int
    profile: Profile
    experiment: str
    config_name: str
    processes: list[_Process]
    packages: list[tuple[str, str]]
    partition: int
    daq_area: str
    start: int
    stop: int
    settings_flags: dict[str, str] = field(default_factory=dict)

    def of_kind(self, kind: str) -> list[_Process]:
        return [p for p in self.processes if p.kind == kind]


def _host(experiment: str, role: str, number: int) -> str:
    if experiment in ("icarus", "sbnd"):
        return f"{experiment}-{role}{number:02d}"
    return f"{experiment}-daq-{role}{number:02d}"


def _boardreader_flavours(count: int) -> list[str]:
    if count == 1:
        return ["tpc"]
    flavours = ["trigger"]
    rest = count - 1
    n_crt = max(1, rest // 10)
    n_pmt = max(1, rest // 5)
    n_tpc = rest - n_crt - n_pmt
    flavours += ["tpc"] * n_tpc + ["pmt"] * n_pmt + ["crt"] * n_crt
    return flavours


def _plan_processes(rng: random.Random, profile: Profile, experiment: str) -> list[_Process]:
    procs: list[_Process] = []
    flavours = _boardreader_flavours(profile.boardreaders)
    width = max(2, len(str(len(flavours))))
    counters: dict[str, int] = {}
    for i, flavour in enumerate(flavours):
        counters[flavour] = counters.get(flavour, 0) + 1
        n = counters[flavour]
        if flavour == "trigger":
            label, host = f"{experiment}trigger", _host(experiment, "trig", 1)
        else:
            label = f"{flavour}{n:0{width}d}"
            host = _host(experiment, flavour, (n - 1) // 4 + 1)
        lo, hi = profile.boardreader_bytes
        target = rng.randint(lo, hi)
        if flavour in ("trigger", "crt") and not profile.name.startswith("huge"):
            target = max(lo // 2, int(target * 0.6))
        procs.append(_Process(KIND_BOARDREADER, label, host, 5205 + i, "1", flavour=flavour,
                              target_bytes=target))
    lo, hi = profile.other_bytes
    layout = ((KIND_EVENTBUILDER, profile.eventbuilders, "EventBuilder", 5705, "1"),
              (KIND_DATALOGGER, profile.dataloggers, "DataLogger", 5755, "2"),
              (KIND_DISPATCHER, profile.dispatchers, "Dispatcher", 5765, "2"),
              (KIND_ROUTINGMANAGER, profile.routingmanagers, "RoutingManager", 5775, "1"))
    for kind, count, prefix, base_port, subsystem in layout:
        for i in range(count):
            evb_host = _host(experiment, "evb", (i % 6) + 1 if kind == KIND_EVENTBUILDER else 6 - (i % 2))
            if not profile.subsystems:
                subsystem = "1"
            procs.append(_Process(kind, f"{prefix}{i + 1}", evb_host, base_port + i, subsystem,
                                  target_bytes=rng.randint(lo, hi)))
    for rank, proc in enumerate(procs):
        proc.rank = rank
    return procs


_PACKAGES = ("sbndaq", "artdaq", "artdaq_core", "artdaq_utilities", "sbndaq_artdaq",
             "sbndaq_artdaq_core", "artdaq_mpich_plugin", "artdaq_epics_plugin", "artdaq_database")
_COMMENTS = ("Merge pull request #{n} from SBNSoftware/feature/{who}_fix_timeouts",
             "Bump version to v1_{n:02d}_00", "Use \"Window\" request mode for CRT readers",
             "Fix routing table update, see issue #{n}")


def _version(rng: random.Random) -> str:
    return f"v{rng.randint(1, 3)}_{rng.randint(0, 14):02d}_{rng.randint(0, 9):02d}"


def _build_date(epoch: int) -> str:
    t = _dt.datetime(1970, 1, 1) + _dt.timedelta(seconds=epoch)
    return f"{t.day:02d}-{_MONTHS[t.month - 1]}-{t.year} {t.hour:02d}:{t.minute:02d}:{t.second:02d} UTC"


def _plan_packages(rng: random.Random, count: int, start: int) -> list[tuple[str, str]]:
    built = start - rng.randint(2, 40) * 86400
    daqinterface = _version(rng)
    packages = [("DAQInterface", f"{daqinterface} {_build_date(built)} {daqinterface}")]
    for name in _PACKAGES[: max(0, count - 1)]:
        version = _version(rng)
        when = built - rng.randint(0, 7200)
        if rng.random() < 0.5:
            commit = "%07x" % rng.getrandbits(28)
            comment = rng.choice(_COMMENTS).format(n=rng.randint(10, 999), who=rng.choice(("jdoe", "mroe")))
            info = (f"{commit} {rng.randint(0, 40)} {rng.randint(0, 12)} \"{comment}\" "
                    f"{format_daq_date(when - 86400)} develop {_build_date(when)} {version}")
        else:
            info = f"{version} {_build_date(when)} {version}"
        packages.append((name, info))
    return packages


def _plan(run: int, profile: Profile, seed: int, experiment: str, config_name: str) -> _Plan:
    rng = random.Random(f"{seed}:{run}")
    processes = _plan_processes(rng, profile, experiment)
    start, stop = run_times(run)
    packages = _plan_packages(rng, profile.packages, start)
    area_day = _dt.datetime(1970, 1, 1) + _dt.timedelta(seconds=start - rng.randint(5, 60) * 86400)
    plan = _Plan(run=run, seed=seed, profile=profile, experiment=experiment, config_name=config_name,
                 processes=processes, packages=packages, partition=rng.randint(1, 4),
                 daq_area=f"/home/nfs/{experiment}/DAQ_DevAreas/DAQ_{area_day:%Y-%m-%d}", start=start,
                 stop=stop)
    plan.settings_flags = {
        "all_events_to_all_dispatchers": rng.choice(("true", "True", "false")),
        "advanced_memory_usage": rng.choice(("true", "false")),
        "method": rng.choice(("direct", "direct", "direct", "pmt")),
        "debug_level": str(rng.randint(1, 3)),
    }
    return plan


# --------------------------------------------------------------------------------------------
# Fixed text files


def _fqdn(host: str) -> str:
    return f"{host}.fnal.gov"


def _logfile(proc: _Process) -> str:
    kind_dir = _LOGDIR_BY_KIND[proc.kind]
    return f"{proc.host}:/daq/log/{kind_dir}/{proc.label}-{proc.host}-{proc.port}.log"


def _metadata_text(plan: _Plan, *, started: bool) -> str:
    evb = _host(plan.experiment, "evb", 1)
    lines = [f"Config name: {plan.config_name}"]
    components = sorted(p.label for p in plan.of_kind(KIND_BOARDREADER))
    lines += [f"Component #{i}: {label}" for i, label in enumerate(components)]
    lines.append(f"DAQInterface directory: {_fqdn(evb)}:{plan.daq_area}/DAQInterface")
    lines.append(f"DAQInterface logfile: {_fqdn(evb)}:/daq/log/DAQInterface/"
                 f"DAQInterface_partition{plan.partition}.log")
    text = "\n".join(lines) + "\n"
    text += ("\n# Two possible sets of fields provided below for code info, depending on if a git repo "
             "was available: \n"
             "# <git commit hash> <LoCs added on top of commit> <LoCs removed on top of commit> "
             "<git commit comment> <git commit time> <git branch> <BuildInfo build time (if available)> "
             "<BuildInfo version (if available)>\n"
             "# <package version> <BuildInfo build time (if available)> <BuildInfo version (if available)>\n\n")
    for name, info in plan.packages:
        text += f"{name} commit/version: {info}\n\n"
    method = plan.settings_flags["method"]
    text += f"\nprocess management method: {method}\n"
    if method == "pmt":
        text += f"\npmt logfile: {evb}:/daq/log/pmt/pmt-{plan.partition}-*.log\n"
        text += f"\n\nprocess manager logfiles: \n{evb}:/daq/log/pmt/pmt-{plan.partition}-{plan.run}.log\n"
    for kind in (KIND_BOARDREADER, KIND_EVENTBUILDER, KIND_ROUTINGMANAGER, KIND_DATALOGGER,
                 KIND_DISPATCHER):
        procs = plan.of_kind(kind)
        if procs:
            text += f"\n\n{_LOGDIR_BY_KIND[kind]} logfiles: \n"
            text += "".join(_logfile(p) + "\n" for p in procs)
    if started:
        text += f"\nDAQInterface start time: {format_daq_date(plan.start)}\n"
    return text


def _boot_text(plan: _Plan) -> str:
    blocks = [
        f"DAQ setup script: {plan.daq_area}/setup_daq_{plan.experiment}.sh\n"
        f"debug level: {plan.settings_flags['debug_level']}\n"
        f"# Multicast address for data requests\n"
        f"request_address: 227.128.{plan.partition}.{100 + plan.partition}\n"
        f"disable_unique_rootfile_labels: false\n"
        f"use_messageviewer: false\n"
        f"fragment_timeout: 10.5\n"
    ]
    if plan.profile.subsystems:
        blocks.append("Subsystem id: 1\nSubsystem destination: 2\n")
        blocks.append("Subsystem id: 2\nSubsystem source: 1\n")
    for proc in plan.processes:
        if proc.kind == KIND_BOARDREADER and not plan.profile.boot_lists_boardreaders:
            continue
        block = (f"{proc.kind} host: {proc.host}\n{proc.kind} port: {proc.port}\n"
                 f"{proc.kind} label: {proc.label}\n")
        if plan.profile.subsystems or proc.kind != KIND_DISPATCHER:
            block += f"{proc.kind} subsystem: {proc.subsystem}\n"
        blocks.append(block)
    return "\n".join(blocks)


def _known_boardreaders_text(plan: _Plan, rng: random.Random) -> str:
    lines = ["# label host port subsystem allowed_processors prepend", ""]
    for proc in plan.of_kind(KIND_BOARDREADER):
        line = f"{proc.label} {proc.host} {proc.port} {proc.subsystem}"
        choice = rng.random()
        if choice < 0.25:
            line += f" {rng.choice(('0-7', '8-15', '-1'))} \"numactl --cpunodebind={rng.randint(0, 1)}\""
        elif choice < 0.5:
            line += f" {rng.choice(('0-15', '-1'))}"
        lines.append(line)
    lines.append("")
    lines.append("# spares and readers not used by this configuration")
    width = max(2, len(str(plan.profile.spare_boardreaders)))
    for i in range(plan.profile.spare_boardreaders):
        host = _host(plan.experiment, "spare", i // 2 + 1)
        lines.append(f"spare{i + 1:0{width}d} {host}" + ("" if i % 2 else f" {6205 + i} 1"))
    lines.append(f"testreader \"{_host(plan.experiment, 'test', 1)}\" 6300")
    return "\n".join(lines) + "\n"


def _settings_text(plan: _Plan) -> str:
    flags = plan.settings_flags
    return (
        "# DAQInterface settings, see the DAQInterface manual\n"
        "log_directory: /daq/log\n"
        "record_directory: /daq/run_records\n"
        f"productsdir_for_bash_scripts: {plan.daq_area}/products\n"
        "package_hashes_to_save: [ \"sbndaq\", 'sbndaq-artdaq', artdaq-core, artdaq ]\n"
        "spack_packages_to_save: [ ]\n"
        "\n"
        "boardreader timeout: 60\n"
        "eventbuilder timeout: 30\n"
        "datalogger timeout: 30\n"
        "dispatcher timeout: 30\n"
        "routingmanager timeout: 30\n"
        "\n"
        "max_fragment_size_bytes: 0x600000\n"
        "max_file_size (MB): 8000\n"
        f"all_events_to_all_dispatchers: {flags['all_events_to_all_dispatchers']}\n"
        f"advanced_memory_usage: {flags['advanced_memory_usage']}\n"
        "transfer_plugin_to_use: TCPSocket\n"
        "disable_private_network_bookkeeping: false\n"
        "use_messageviewer: False\n"
        "boardreader_priorities: [ \"icarustrigger\", 'crt01' ]\n"
        "kill_existing_processes_on_boot: \"yes, with SIGKILL\"\n"
    )


def _setup_text(plan: _Plan) -> str:
    return (
        "#!/bin/bash\n"
        f"# DAQ setup script for {plan.experiment.upper()} (partition {plan.partition})\n"
        "\n"
        "source /software/products/setup\n"
        f"export PRODUCTS=\"{plan.daq_area}/localProducts:${{PRODUCTS}}\"\n"
        "setup mrb\n"
        f"source {plan.daq_area}/localProducts_sbndaq_{plan.packages[0][1].split()[0]}_e26_prof/setup\n"
        "mrbslp\n"
        "\n"
        "export TRACE_NAME=TRACE\n"
        "export TRACE_FILE=/tmp/trace_buffer_$USER\n"
        f"export FHICL_FILE_PATH={plan.daq_area}/fcl:$FHICL_FILE_PATH\n"
        "if [[ -z \"$DAQ_HOST\" ]]; then\n"
        "    echo \"DAQ_HOST not set, using $(hostname -s) \\\\ continuing\" >&2\n"
        "fi\n"
        "alias lsruns='ls -1 /daq/run_records | sort -n | tail'\n"
    )


def _environment_text(plan: _Plan) -> str:
    base = 10000
    env = {
        "DAQINTERFACE_BASE_PORT": str(base),
        "DAQINTERFACE_FHICL_DIRECTORY": "IGNORED",
        "DAQINTERFACE_KNOWN_BOARDREADERS_LIST": f"{plan.daq_area}/DAQInterface/known_boardreaders_list",
        "DAQINTERFACE_LOGDIR": "/daq/log/DAQInterface",
        "DAQINTERFACE_LOGFILE": f"/daq/log/DAQInterface/DAQInterface_partition{plan.partition}.log",
        "DAQINTERFACE_MESSAGEFACILITY_FHICL": f"{plan.daq_area}/DAQInterface/MessageFacility.fcl",
        "DAQINTERFACE_PARTITION_NUMBER": str(plan.partition),
        "DAQINTERFACE_PORT": str(base + plan.partition * 1000 + 100),
        "DAQINTERFACE_PORTS_PER_PARTITION": "1000",
        "DAQINTERFACE_PROCESS_MANAGEMENT_METHOD": plan.settings_flags["method"],
        "DAQINTERFACE_PROCESS_REQUIREMENTS_LIST": f"{plan.daq_area}/DAQInterface/process_requirements",
        "DAQINTERFACE_SETTINGS": f"{plan.daq_area}/DAQInterface/settings_{plan.experiment}",
        "DAQINTERFACE_STANDARD_SOURCEFILE_SOURCED": "true",
        "DAQINTERFACE_TTY": "'/dev/pts/3'",
        "DAQINTERFACE_USER": f"{plan.experiment}",
        "DAQINTERFACE_USER_SOURCEFILE": f"{plan.daq_area}/DAQInterface/user_sourcefile_{plan.experiment}",
        "DAQINTERFACE_WINDOW_TITLE": "\"DAQInterface partition %d\"" % plan.partition,
    }
    return "".join(f"export {name}={env[name]}\n" for name in sorted(env))


def _ranks_text(plan: _Plan) -> str:
    def row(host: str, port: object, label: str, subsystem: str, rank: object) -> str:
        return f"{host:<24}{str(port):<8}{label:<24}{subsystem:<11}{rank}"

    rows = [row("host", "port", "label", "subsystem", "rank"), ""]
    rows += [row(p.host, p.port, p.label, p.subsystem, p.rank)
             for p in sorted(plan.processes, key=lambda p: p.rank)]
    return "\n".join(rows) + "\n"


# --------------------------------------------------------------------------------------------
# FHiCL


def _q(text: str) -> str:
    """A double-quoted FHiCL string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Fcl:
    """Tiny indenting FHiCL writer (values are passed as FHiCL source text)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 0

    def _put(self, text: str) -> None:
        self.lines.append("  " * self.depth + text)

    def comment(self, text: str) -> "_Fcl":
        self._put(f"# {text}")
        return self

    def blank(self) -> "_Fcl":
        self.lines.append("")
        return self

    def kv(self, key: str, value: object, annotation: str = "") -> "_Fcl":
        self._put(f"{key}: {value}" + (f"  # {annotation}" if annotation else ""))
        return self

    def open(self, key: str) -> "_Fcl":
        self._put(f"{key}: {{")
        self.depth += 1
        return self

    def close(self) -> "_Fcl":
        self.depth -= 1
        self._put("}")
        return self

    def raw(self, text: str) -> "_Fcl":
        self._put(text)
        return self

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _inline_table(items: dict[str, object]) -> str:
    return "{ " + " ".join(f"{k}: {v}" for k, v in items.items()) + " }"


def _metrics(fcl: _Fcl, plan: _Plan, proc: _Process, rng: random.Random) -> None:
    fcl.open("metrics")
    fcl.open("fileMetrics")
    fcl.kv("metricPluginType", _q("file")).kv("level", rng.randint(2, 5))
    fcl.kv("fileName", _q(f"/daq/log/metrics/{proc.label}_%UID%_metrics.log"))
    fcl.kv("absolute_file_path", "true").kv("uniquify", "true")
    fcl.close()
    fcl.open("graphite")
    fcl.kv("metricPluginType", "graphite").kv("level", 3)
    fcl.kv("host", _q(_host(plan.experiment, "db", 1))).kv("port", 2003)
    fcl.kv("namespace", _q(f"{plan.experiment}.{proc.kind.lower()}.{proc.label}."))
    fcl.kv("reporting_interval", f"{rng.choice((5, 10, 15))}.0", "seconds")
    fcl.close()
    fcl.close()


def _destinations(fcl: _Fcl, plan: _Plan, ranks: Sequence[int], words: int) -> None:
    fcl.open("destinations")
    for rank in ranks:
        fcl.kv(f"d{rank}", _inline_table({
            "transferPluginType": "TCPSocket", "destination_rank": rank,
            "max_fragment_size_words": words, "host_map": "@local::host_map"}))
    fcl.close()


def _sources(fcl: _Fcl, ranks: Sequence[int], words: int) -> None:
    fcl.open("sources")
    for rank in ranks:
        fcl.kv(f"s{rank}", _inline_table({
            "transferPluginType": "TCPSocket", "source_rank": rank,
            "max_fragment_size_words": words, "host_map": "@local::host_map"}))
    fcl.close()


def _prolog(fcl: _Fcl, plan: _Plan, proc: _Process) -> None:
    fcl.raw("BEGIN_PROLOG")
    fcl.comment("rank to host map for the transfer plugins")
    entries = [f"  {{ rank: {p.rank} host: {_q(p.host)} }}" for p in plan.processes]
    fcl.raw("host_map: [")
    for i, entry in enumerate(entries):
        fcl.raw(entry + ("," if i < len(entries) - 1 else ""))
    fcl.raw("]")
    fcl.open("routing_settings")
    fcl.kv("use_routing_manager", "true" if plan.of_kind(KIND_ROUTINGMANAGER) else "false")
    fcl.kv("routing_manager_hostname", _q(_host(plan.experiment, "evb", 1)))
    fcl.kv("table_update_port", 35556).kv("routing_token_port", 35555)
    fcl.close()
    fcl.raw("END_PROLOG")
    fcl.blank()


def _header(fcl: _Fcl, plan: _Plan, proc: _Process) -> None:
    fcl.comment(f"FHiCL document used by artdaq for {proc.kind} {proc.label} in run {plan.run}")
    fcl.comment(f"configuration {plan.config_name}, partition {plan.partition}, rank {proc.rank}")
    fcl.blank()


def _consumer_ranks(plan: _Plan, proc: _Process) -> list[int]:
    ebs = [p.rank for p in plan.of_kind(KIND_EVENTBUILDER)]
    return ebs or [p.rank for p in plan.of_kind(KIND_DATALOGGER)]


_FRAGMENT_TYPES = {"tpc": ("PHYSCRATEDATA", "PhysCrateReader"), "pmt": ("CAENV1730", "CAENV1730Readout"),
                   "crt": ("BERNCRTV2", "BernCRTReader"), "trigger": ("ICARUSTriggerUDP", "ICARUSTriggerUDP")}


def _boardreader_head_tail(plan: _Plan, proc: _Process, rng: random.Random) -> tuple[str, str, str]:
    """FHiCL before the channel table, the table's entry prefix, and the FHiCL after it."""
    fcl = _Fcl()
    _header(fcl, plan, proc)
    _prolog(fcl, plan, proc)
    ftype, generator = _FRAGMENT_TYPES[proc.flavour]
    fcl.open("daq")
    fcl.open("fragment_receiver")
    fcl.kv("generator", _q(generator))
    fcl.kv("fragment_type", ftype)
    fcl.kv("fragment_id", proc.rank).kv("board_id", proc.rank)
    fcl.kv("max_fragment_size_bytes", hex(rng.choice((0x100000, 0x400000, 0x600000))))
    fcl.kv("request_mode", _q(rng.choice(("Window", "Single", "Buffer"))))
    fcl.kv("request_address", _q(f"227.128.{plan.partition}.{100 + plan.partition}"))
    fcl.kv("request_port", 3001).kv("request_window_offset", rng.randint(0, 5))
    fcl.kv("request_window_width", rng.randint(2, 8)).kv("stale_request_timeout", "0xFFFFFFFF")
    fcl.kv("receive_requests", "true").kv("separate_data_thread", "true")
    fcl.kv("circular_buffer_mode", rng.choice(("true", "false")))
    fcl.kv("data_buffer_depth_fragments", rng.choice((500, 1000, 2000)))
    fcl.kv("sleep_on_stop_us", 500000).kv("readout_period_us", f"{rng.uniform(1, 50):.3f}")
    fcl.kv("trigger_latency_ns", f"{rng.uniform(0.5, 2.5):.2e}", "from the 2024 timing scan")
    fcl.kv("board_name", _q(f"{proc.label}_{proc.host}") if rng.random() < 0.5 else f"{proc.label}_board")
    fcl.kv("calibration_file", f"'/daq/calib/{proc.flavour}/{proc.label}_latest.txt'")
    fcl.kv("optional_gate", "nil")
    fcl.kv("routing_table_config", "@local::routing_settings")
    fcl.kv("register_writes", "[ " + ", ".join(
        f"[{hex(0x1000 + 4 * i)}, {hex(rng.getrandbits(12))}]" for i in range(rng.randint(3, 8))) + " ]")
    fcl.kv("disabled_channels", "[" + ", ".join(str(c) for c in sorted(rng.sample(range(64), 3))) + "]")
    fcl.kv("empty_list", "[]")
    fcl.kv("n_channels_per_board", 64)
    fcl.raw("channel_settings: [")
    head = fcl.text()
    tail = _Fcl()
    tail.depth = 2
    tail.raw("]")
    tail.close()  # fragment_receiver
    _metrics(tail, plan, proc, rng)
    _destinations(tail, plan, _consumer_ranks(plan, proc), rng.choice((262144, 1048576, 2097152)))
    tail.close()  # daq
    return head, "      ", tail.text()


def _channel_entries(rng: random.Random, indent: str) -> Iterator[str]:
    channel = 0
    while True:
        prefix = "" if channel == 0 else ",\n"
        if channel % 64 == 0:
            prefix += f"{indent}# board {channel // 64}, channels {channel}-{channel + 63}\n"
        entry = _inline_table({
            "channel": channel, "pedestal": hex(0x700 + rng.getrandbits(8)),
            "threshold": rng.randint(8, 40), "enabled": "true" if rng.random() > 0.03 else "false",
            "gain": f"{rng.uniform(0.9, 1.1):.4f}", "baseline_rms": f"{rng.uniform(1.5, 4.0):.3f}",
        })
        yield f"{prefix}{indent}{entry}"
        channel += 1


def _write_boardreader(fh: IO[str], plan: _Plan, proc: _Process) -> None:
    rng = random.Random(f"{plan.seed}:{plan.run}:{proc.label}")
    head, indent, tail = _boardreader_head_tail(plan, proc, rng)
    fh.write(head)
    written = len(head) + len(tail) + 1
    for entry in _channel_entries(rng, indent):
        fh.write(entry)
        written += len(entry)
        if written >= proc.target_bytes:
            break
    fh.write("\n")
    fh.write(tail)


def _art_part(fcl: _Fcl, plan: _Plan, proc: _Process, rng: random.Random) -> None:
    fcl.open("services")
    fcl.open("scheduler").kv("errorOnFailureToPut", "false").close()
    fcl.open("ArtdaqSharedMemoryServiceInterface").kv("service_provider", "ArtdaqSharedMemoryService")
    fcl.close()
    fcl.kv("TimeTracker", "{}")
    fcl.close()
    fcl.open("outputs")
    if proc.kind == KIND_DATALOGGER:
        fcl.open("normalOutput")
        fcl.kv("module_type", "RootDAQOut")
        fcl.kv("fileName", _q(f"/data/{plan.experiment}/data_{proc.label}_run%06r_%#_%to.root"))
        fcl.kv("fileProperties", _inline_table({"maxSubRuns": 1, "maxRuns": 1, "maxSize": 8192000}))
        fcl.kv("compressionLevel", 501).kv("fastCloning", "false")
        fcl.close()
    else:
        fcl.open("rootNetOutput").kv("module_type", "RootNetOutput")
        fcl.kv("SelectEvents", "[ pmain ]").close()
    fcl.close()
    fcl.open("physics")
    fcl.kv("analyzers", "{}").kv("producers", "{}")
    fcl.open("filters")
    fcl.kv("prescaleFilter", _inline_table({"module_type": "RandomPrescaleFilter",
                                            "prescale": rng.choice((1, 10, 100))}))
    fcl.close()
    fcl.kv("pmain", "[ prescaleFilter ]")
    fcl.kv("my_output_modules", "[ normalOutput ]" if proc.kind == KIND_DATALOGGER else "[ rootNetOutput ]")
    fcl.close()
    fcl.kv("source", _inline_table({"module_type": "ArtdaqInput", "waiting_time": 2500000,
                                    "resume_after_timeout": "true"}))
    fcl.kv("process_name", "DAQ" if proc.kind == KIND_EVENTBUILDER else proc.kind.upper())


def _source_statistics(fcl: _Fcl, proc: _Process, rng: random.Random, expected_rest: int) -> None:
    """Grow a non-boardreader document towards its size target with a sequence of small tables."""
    size = len(fcl.text()) + expected_rest
    fcl.raw("source_statistics: [")
    i = 0
    while size < proc.target_bytes or i == 0:
        if i:
            fcl.lines[-1] += ","
        fcl.raw("  " + _inline_table({"source_rank": i, "expected": "true",
                                      "window_ns": rng.randint(1000, 9000),
                                      "label": _q(f"src{i:03d}")}))
        size += len(fcl.lines[-1]) + 2
        i += 1
    fcl.raw("]")


def _other_fcl(plan: _Plan, proc: _Process) -> str:
    rng = random.Random(f"{plan.seed}:{plan.run}:{proc.label}")
    fcl = _Fcl()
    _header(fcl, plan, proc)
    with_prolog = proc.kind != KIND_ROUTINGMANAGER
    if with_prolog:
        _prolog(fcl, plan, proc)
    fcl.open("daq")
    br_ranks = [p.rank for p in plan.of_kind(KIND_BOARDREADER)]
    words = 2097152
    if proc.kind == KIND_ROUTINGMANAGER:
        fcl.open("policy").kv("policy", _q("NoOp"))
        fcl.kv("receiver_ranks", "[" + ", ".join(str(p.rank) for p in plan.of_kind(KIND_EVENTBUILDER)) + "]")
        fcl.close()
        fcl.kv("sender_ranks", "[" + ", ".join(str(r) for r in br_ranks) + "]")
        fcl.kv("table_update_port", 35556).kv("token_receiver", _inline_table(
            {"routing_token_port": 35555, "mode": "EventBuilding"}))
        fcl.kv("table_update_address", _q("227.128.1.129")).kv("table_update_interval_ms", 1000)
        fcl.kv("use_routing_manager", "true")
        _metrics(fcl, plan, proc, rng)
        _source_statistics(fcl, proc, rng, 10)
        fcl.close()
        return fcl.text()
    section = "event_builder" if proc.kind == KIND_EVENTBUILDER else "aggregator"
    fcl.open(section)
    fcl.kv("expected_fragments_per_event", len(br_ranks))
    fcl.kv("max_fragment_size_bytes", "0x1000000").kv("use_art", "true")
    fcl.kv("print_event_store_stats", "true").kv("buffer_count", rng.choice((10, 20, 40)))
    fcl.kv("max_incomplete_events", 75, "Same as boardreader sync interval")
    fcl.kv("verbose", rng.choice(("true", "false"))).kv("send_requests", "true")
    fcl.kv("request_address", _q(f"227.128.{plan.partition}.{100 + plan.partition}"))
    if proc.kind == KIND_DATALOGGER:
        fcl.kv("is_datalogger", "true")
    if proc.kind == KIND_DISPATCHER:
        fcl.kv("is_dispatcher", "true").kv("broadcast_mode", "true")
    fcl.kv("routing_token_config", "@local::routing_settings")
    fcl.kv("init_fragment_count", 0).kv("end_of_data_timeout_s", f"{rng.uniform(1, 30):.1f}")
    if proc.kind == KIND_EVENTBUILDER:
        _sources(fcl, br_ranks, words)
    else:
        _sources(fcl, [p.rank for p in plan.of_kind(KIND_EVENTBUILDER)], words)
    _source_statistics(fcl, proc, rng, 1400)
    fcl.close()
    _metrics(fcl, plan, proc, rng)
    if proc.kind == KIND_EVENTBUILDER:
        dl_ranks = [p.rank for p in plan.of_kind(KIND_DATALOGGER)]
        _destinations(fcl, plan, dl_ranks, words)
    fcl.close()
    fcl.blank()
    _art_part(fcl, plan, proc, rng)
    return fcl.text()


# --------------------------------------------------------------------------------------------
# Writing


def _mtime_value(mtime: MtimeArg, default: int) -> float:
    if mtime is None:
        return float(default)
    if isinstance(mtime, _dt.datetime):
        if mtime.tzinfo is None:
            mtime = mtime.replace(tzinfo=_dt.timezone.utc)
        return mtime.timestamp()
    return float(mtime)


def _write(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)


def _write_tree(target: Path, plan: _Plan, *, started: bool, finished: bool) -> None:
    rng = random.Random(f"{plan.seed}:{plan.run}:fixed")
    metadata = _metadata_text(plan, started=started)
    if started and finished:
        metadata += f"\nDAQInterface stop time: {format_daq_date(plan.stop)}\n"
    _write(target / "metadata.txt", metadata)
    _write(target / "boot.txt", _boot_text(plan))
    _write(target / "known_boardreaders_list.txt", _known_boardreaders_text(plan, rng))
    _write(target / "settings.txt", _settings_text(plan))
    _write(target / "setup.txt", _setup_text(plan))
    _write(target / "environment.txt", _environment_text(plan))
    _write(target / "ranks.txt", _ranks_text(plan))
    for proc in plan.processes:
        path = target / f"{proc.label}.fcl"
        if proc.kind == KIND_BOARDREADER:
            with open(path, "w", encoding="utf-8", newline="\n") as fh:
                _write_boardreader(fh, plan, proc)
        else:
            _write(path, _other_fcl(plan, proc))


def _set_mtimes(run_dir: Path, mtime: float) -> None:
    for entry in sorted(run_dir.iterdir()):
        os.utime(entry, (mtime, mtime))
    os.utime(run_dir, (mtime, mtime))


def generate_run_record(directory: Union[str, os.PathLike], run: int, *, profile: str = "typical",
                        seed: int = 0, finished: bool = True, started: bool = True,
                        config_name: str = "standard", experiment: str = "icarus",
                        mtime: MtimeArg = None, overwrite: bool = False) -> Path:
    """Write `<directory>/<run>/` as DAQInterface would and return its path.

    The directory appears at once (built under a hidden temporary name, then renamed). `finished`
    appends the stop time; `started=False` leaves out the start time too (run failed while starting).
    `mtime` (epoch seconds or datetime) sets every file's and the directory's mtime; by default it is
    the run's stop time (or start time if unfinished), derived from the run number. An existing run
    directory raises FileExistsError unless `overwrite` is true.
    """
    if run < 0:
        raise ValueError(f"run number must be >= 0, got {run}")
    plan = _plan(run, parse_profile(profile), seed, experiment, config_name)
    parent = Path(directory)
    parent.mkdir(parents=True, exist_ok=True)
    final = parent / str(run)
    if final.exists() and not overwrite:
        raise FileExistsError(f"run directory {final} already exists")
    staging = Path(tempfile.mkdtemp(prefix=f".generating-{run}-", dir=parent))
    try:
        _write_tree(staging, plan, started=started, finished=finished)
        default = plan.stop if (started and finished) else plan.start
        _set_mtimes(staging, _mtime_value(mtime, default))
        os.chmod(staging, 0o755)
        if final.exists():
            shutil.rmtree(final)
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def generate_run_records(directory: Union[str, os.PathLike], runs: Iterable[int], **kw) -> list[Path]:
    """generate_run_record for each run (same keyword arguments); returns the run directories."""
    return [generate_run_record(directory, run, **kw) for run in runs]


def mark_finished(run_dir: Union[str, os.PathLike], when: Union[None, int, float, _dt.datetime, str] = None,
                  *, mtime: MtimeArg = None) -> str:
    """Append `⏎DAQInterface stop time: <date>⏎` to metadata.txt, as DAQInterface does at stop.

    `when` defaults to the run's deterministic stop time (from the directory name), so generating
    unfinished then marking finished gives the same bytes as generating finished. Returns the date
    written; a metadata.txt that already has a stop time is left unchanged (its value is returned).
    The file's mtime becomes `mtime` if given, else whatever the append leaves (now).
    """
    run_dir = Path(run_dir)
    metadata = run_dir / "metadata.txt"
    text = metadata.read_text(encoding="utf-8")
    existing = _STOP_RE.search(text)
    if existing:
        return existing.group(1).strip()
    if when is None:
        if not run_dir.name.isdigit():
            raise ValueError(f"cannot derive a stop time from directory name {run_dir.name!r}; pass when=")
        when = run_times(int(run_dir.name))[1]
    stamp = when if isinstance(when, str) else format_daq_date(when)
    with open(metadata, "a", encoding="utf-8", newline="\n") as fh:
        fh.write(f"\nDAQInterface stop time: {stamp}\n")
    if mtime is not None:
        value = _mtime_value(mtime, 0)
        os.utime(metadata, (value, value))
        os.utime(run_dir, (value, value))
    return stamp


# --------------------------------------------------------------------------------------------
# Command line


def parse_runs(spec: str) -> list[int]:
    """`1000-1019`, `1000,1005` or a mix → sorted unique run numbers."""
    runs: set[int] = set()
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not match:
            raise ValueError(f"bad run range {part!r}: use N, N-M or a comma-separated list")
        lo = int(match.group(1))
        hi = int(match.group(2) or lo)
        if hi < lo:
            raise ValueError(f"bad run range {part!r}: end before start")
        runs.update(range(lo, hi + 1))
    if not runs:
        raise ValueError("no runs given")
    return sorted(runs)


def same_run_record(a: Path, b: Path) -> bool:
    """True when two run directories hold the same relative paths with the same bytes."""
    def listing(root: Path) -> list[str]:
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))

    names = listing(a)
    if names != listing(b):
        return False
    return all(filecmp.cmp(a / n, b / n, shallow=False) for n in names if (a / n).is_file())


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="generate-run-records",
        description=(
            "Write realistic, deterministic DAQInterface run records (metadata.txt, boot.txt, "
            "known_boardreaders_list.txt, settings.txt, setup.txt, environment.txt, ranks.txt and "
            "one <label>.fcl per artdaq process) into OUT/<run>/. The same run, profile and seed "
            "always give byte-identical files. Idempotent: a run directory that already holds "
            "exactly what would be written is left alone; one that differs is kept unless --force."),
        epilog="Example: generate-run-records --out /tmp/run_records --runs 1000-1019 --unfinished 1019")
    parser.add_argument("--out", required=True, type=Path, help="run-records directory (created if missing)")
    parser.add_argument("--runs", required=True, help="runs to write: N, N-M or a comma-separated mix")
    parser.add_argument("--profile", default="typical",
                        help="small (~10 files/20 kB), typical (~20 files/60 kB, default), "
                             "large (~150 files/5 MB) or huge:<MB> (a few very large boardreader files)")
    parser.add_argument("--seed", type=int, default=0, help="varies the content; default 0")
    parser.add_argument("--unfinished", action="append", default=[], metavar="RUNS",
                        help="runs written without a stop time, as if still taking data (repeatable)")
    parser.add_argument("--experiment", default="icarus", help="host and label naming; default icarus")
    parser.add_argument("--config-name", default="standard", help="the 'Config name:' value")
    parser.add_argument("--mtime", default="auto",
                        help="file times: 'auto' (default: the run's own stop/start time for finished "
                             "runs, now for unfinished ones so they look running), 'run', 'now' or "
                             "epoch seconds")
    parser.add_argument("--force", action="store_true", help="replace run directories whose content differs")
    return parser


def _cli_mtime(choice: str, finished: bool) -> MtimeArg:
    if choice == "run" or (choice == "auto" and finished):
        return None
    if choice in ("now", "auto"):
        return time.time()
    return float(choice)


def _generate_one(args: argparse.Namespace, run: int, finished: bool) -> str:
    out: Path = args.out
    existing = out / str(run)
    options = dict(profile=args.profile, seed=args.seed, finished=finished,
                   experiment=args.experiment, config_name=args.config_name)
    if not existing.exists():
        generate_run_record(out, run, mtime=_cli_mtime(args.mtime, finished), **options)
        return "created"
    scratch = Path(tempfile.mkdtemp(prefix=f".compare-{run}-", dir=out))
    try:
        candidate = generate_run_record(scratch, run, **options)
        if same_run_record(candidate, existing):
            return "unchanged"
        if not args.force:
            return "differs"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    generate_run_record(out, run, mtime=_cli_mtime(args.mtime, finished), overwrite=True, **options)
    return "replaced"


def main(argv: Optional[Sequence[str]] = None) -> int:
    """CLI: `python -m archiver_resources.samples --out DIR --runs 1000-1019 [options]`."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        runs = parse_runs(args.runs)
        unfinished = {r for spec in args.unfinished for r in parse_runs(spec)}
        parse_profile(args.profile)
        if args.mtime not in ("auto", "run", "now"):
            float(args.mtime)
    except ValueError as exc:
        parser.error(str(exc))
    args.out.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for run in runs:
        outcome = _generate_one(args, run, run not in unfinished)
        counts[outcome] = counts.get(outcome, 0) + 1
        if outcome == "differs":
            print(f"run {run}: {args.out / str(run)} exists with different content; kept "
                  f"(use --force to replace)", file=sys.stderr)
        else:
            print(f"run {run}: {outcome}")
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    print(f"{len(runs)} runs in {args.out}: {summary}")
    return 1 if counts.get("differs") else 0


if __name__ == "__main__":
    sys.exit(main())
