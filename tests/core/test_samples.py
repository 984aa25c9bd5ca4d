"""Tests of the deterministic run-record generator (archiver_resources.samples)."""

import datetime as dt
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from archiver_resources import samples
from archiver_resources.samples import (
    format_daq_date,
    generate_run_record,
    generate_run_records,
    main,
    mark_finished,
    parse_profile,
    parse_runs,
    run_times,
)

FIXED_FILES = {"metadata.txt", "boot.txt", "known_boardreaders_list.txt", "settings.txt", "setup.txt",
               "environment.txt", "ranks.txt"}
DATE_RE = r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun) [A-Z][a-z]{2} [ 123]\d \d\d:\d\d:\d\d UTC \d{4}"


def tree_digest(run_dir: Path, *, with_mtimes: bool = True) -> str:
    digest = hashlib.sha256()
    for path in sorted(run_dir.rglob("*")):
        digest.update(path.relative_to(run_dir).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
        if with_mtimes:
            digest.update(str(path.stat().st_mtime_ns).encode())
    if with_mtimes:
        digest.update(str(run_dir.stat().st_mtime_ns).encode())
    return digest.hexdigest()


def sizes(run_dir: Path) -> tuple[int, int]:
    files = [p for p in run_dir.iterdir() if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


# ---------------------------------------------------------------------------- determinism


def test_same_inputs_give_byte_identical_trees_with_identical_mtimes(tmp_path):
    a = generate_run_record(tmp_path / "a", 1000, seed=7)
    b = generate_run_record(tmp_path / "b", 1000, seed=7)
    assert a.name == "1000"
    assert tree_digest(a) == tree_digest(b)


def test_seed_and_run_change_the_content(tmp_path):
    base = tree_digest(generate_run_record(tmp_path / "a", 1000, seed=0), with_mtimes=False)
    other_seed = tree_digest(generate_run_record(tmp_path / "b", 1000, seed=1), with_mtimes=False)
    other_run = generate_run_record(tmp_path / "c", 1001, seed=0)
    assert base != other_seed
    assert base != tree_digest(other_run, with_mtimes=False)


def test_default_mtime_is_the_runs_stop_time_and_option_overrides(tmp_path):
    run_dir = generate_run_record(tmp_path / "a", 1234)
    _, stop = run_times(1234)
    assert {int(p.stat().st_mtime) for p in run_dir.iterdir()} == {stop}
    assert int(run_dir.stat().st_mtime) == stop
    fixed = generate_run_record(tmp_path / "b", 1234, mtime=1_700_000_000)
    assert {p.stat().st_mtime for p in [fixed, *fixed.iterdir()]} == {1_700_000_000.0}
    when = dt.datetime(2024, 10, 15, 14, 2, 11, tzinfo=dt.timezone.utc)
    aware = generate_run_record(tmp_path / "c", 1234, mtime=when)
    assert (aware / "metadata.txt").stat().st_mtime == when.timestamp()


# ---------------------------------------------------------------------------- profiles


@pytest.mark.parametrize("profile, files, kbytes", [
    ("small", (8, 12), (12, 35)),
    ("typical", (15, 30), (30, 120)),
    ("large", (100, 200), (2_000, 8_000)),
])
def test_profiles_hit_their_size_bands(tmp_path, profile, files, kbytes):
    count, total = sizes(generate_run_record(tmp_path, 42, profile=profile))
    assert files[0] <= count <= files[1]
    assert kbytes[0] * 1000 <= total <= kbytes[1] * 1000


def test_huge_profile_reaches_the_requested_size_with_a_few_big_boardreaders(tmp_path):
    run_dir = generate_run_record(tmp_path, 7, profile="huge:3")
    count, total = sizes(run_dir)
    assert count < 20
    assert 2_800_000 <= total <= 3_300_000
    big = [p for p in run_dir.glob("*.fcl") if p.stat().st_size > 500_000]
    assert 2 <= len(big) <= 6


def test_unknown_profile_is_refused():
    with pytest.raises(ValueError, match="unknown profile"):
        parse_profile("enormous")


def test_every_profile_has_the_fixed_files_and_one_fcl_per_ranked_process(tmp_path):
    for run, profile in ((1, "small"), (2, "typical"), (3, "large")):
        run_dir = generate_run_record(tmp_path, run, profile=profile)
        names = {p.name for p in run_dir.iterdir()}
        assert FIXED_FILES <= names
        ranks = (run_dir / "ranks.txt").read_text().splitlines()[2:]
        labels = {row.split()[2] for row in ranks}
        assert {f"{label}.fcl" for label in labels} == names - FIXED_FILES


# ---------------------------------------------------------------------------- content


def test_metadata_layout_and_stop_time_when_finished(tmp_path):
    text = (generate_run_record(tmp_path, 1000) / "metadata.txt").read_text()
    start, stop = run_times(1000)
    assert text.startswith("Config name: standard\nComponent #0: ")
    assert "\n# Two possible sets of fields provided below for code info, depending on if a git repo " \
           "was available: \n" in text
    assert re.search(r"^DAQInterface commit/version: .+\n\n", text, re.M)
    assert "\nprocess management method: " in text
    assert re.search(r"\n\n\nboardreader logfiles: \n(\S+:\S+\.log\n)+", text)
    assert text.endswith(f"\n\nDAQInterface start time: {format_daq_date(start)}\n"
                         f"\nDAQInterface stop time: {format_daq_date(stop)}\n")
    assert re.search(rf"^DAQInterface stop time: {DATE_RE}$", text, re.M)


def test_unfinished_and_unstarted_runs(tmp_path):
    unfinished = (generate_run_record(tmp_path, 5, finished=False) / "metadata.txt").read_text()
    assert "DAQInterface start time:" in unfinished
    assert "DAQInterface stop time" not in unfinished
    assert unfinished.endswith("\n")
    unstarted = (generate_run_record(tmp_path, 6, started=False) / "metadata.txt").read_text()
    assert "start time" not in unstarted and "stop time" not in unstarted


def test_config_name_and_experiment_are_used(tmp_path):
    run_dir = generate_run_record(tmp_path, 9, config_name="Physics_General/v2", experiment="sbnd")
    metadata = (run_dir / "metadata.txt").read_text()
    assert metadata.startswith("Config name: Physics_General/v2\n")
    assert "Component #0: " in metadata and "sbnd-" in metadata and "icarus" not in metadata


def test_mark_finished_appends_like_daqinterface_and_matches_a_finished_generation(tmp_path):
    late = generate_run_record(tmp_path / "late", 1019, finished=False)
    stamp = mark_finished(late)
    assert stamp == format_daq_date(run_times(1019)[1])
    finished = generate_run_record(tmp_path / "done", 1019)
    assert (late / "metadata.txt").read_bytes() == (finished / "metadata.txt").read_bytes()
    assert tree_digest(late, with_mtimes=False) == tree_digest(finished, with_mtimes=False)
    # a second call changes nothing and reports the existing stop time
    assert mark_finished(late, dt.datetime(2030, 1, 1)) == stamp
    assert (late / "metadata.txt").read_text().count("stop time") == 1


def test_mark_finished_with_explicit_time_and_mtime(tmp_path):
    run_dir = generate_run_record(tmp_path, 3, finished=False)
    when = dt.datetime(2024, 10, 15, 16, 2, 48)
    assert mark_finished(run_dir, when, mtime=1_800_000_000) == "Tue Oct 15 16:02:48 UTC 2024"
    assert (run_dir / "metadata.txt").read_text().endswith(
        "\n\nDAQInterface stop time: Tue Oct 15 16:02:48 UTC 2024\n")
    assert (run_dir / "metadata.txt").stat().st_mtime == 1_800_000_000


def test_format_daq_date_pads_the_day_with_a_space():
    assert format_daq_date(dt.datetime(2024, 10, 1, 9, 5, 3)) == "Tue Oct  1 09:05:03 UTC 2024"
    aware = dt.datetime(2024, 10, 15, 16, 2, 11, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert format_daq_date(aware) == "Tue Oct 15 14:02:11 UTC 2024"


def test_boot_ranks_environment_shapes(tmp_path):
    run_dir = generate_run_record(tmp_path, 77)
    boot = (run_dir / "boot.txt").read_text()
    assert boot.startswith("DAQ setup script: ")
    assert re.search(r"^debug level: \d$", boot, re.M)
    assert "\n\nEventBuilder host: " in boot and "EventBuilder label: EventBuilder1\n" in boot
    assert "Subsystem id: 1\nSubsystem destination: 2\n" in boot
    ranks = (run_dir / "ranks.txt").read_text().splitlines()
    assert ranks[0].split() == ["host", "port", "label", "subsystem", "rank"]
    assert ranks[1] == ""
    numbers = [int(row.split()[4]) for row in ranks[2:]]
    assert numbers == sorted(numbers) == list(range(len(numbers)))
    columns = {tuple(m.start() for m in re.finditer(r"\S+", row)) for row in ranks[:1] + ranks[2:]}
    assert len(columns) == 1  # fixed-width columns
    env = (run_dir / "environment.txt").read_text().splitlines()
    assert env == sorted(env) and all(re.match(r"export DAQINTERFACE_\w+=\S", line) for line in env)


def test_small_profile_lists_boardreaders_in_boot_and_has_no_subsystems(tmp_path):
    boot = (generate_run_record(tmp_path, 1, profile="small") / "boot.txt").read_text()
    assert "BoardReader label: " in boot
    assert "Subsystem" not in boot


def _strip_strings_and_comments(text: str) -> str:
    text = re.sub(r'"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'', '""', text)
    return re.sub(r"#[^\n]*", "", text)


def test_fcl_files_have_artdaq_structure_and_balanced_brackets(tmp_path):
    run_dir = generate_run_record(tmp_path, 11)
    fcls = sorted(run_dir.glob("*.fcl"))
    assert len(fcls) == 13
    prologs = 0
    for path in fcls:
        text = path.read_text()
        code = _strip_strings_and_comments(text)
        assert code.count("{") == code.count("}"), path.name
        assert code.count("[") == code.count("]"), path.name
        assert re.search(r"^daq: \{$", text, re.M), path.name
        assert text.isascii()
        if "BEGIN_PROLOG" in text:
            prologs += 1
            assert text.index("BEGIN_PROLOG") < text.index("END_PROLOG") < text.index("daq: {")
        else:
            assert "@local::" not in text, path.name
    assert 0 < prologs < len(fcls)
    br = (run_dir / "tpc01.fcl").read_text()
    for needle in ("fragment_receiver: {", "metrics: {", "destinations: {", "@local::", "0x", "true",
                   "[ [0x", "# board 0"):
        assert needle in br


def test_generated_fcl_parses_as_fhicl(tmp_path):
    fhicl = pytest.importorskip("archiver_resources.fhicl")
    if not hasattr(fhicl, "fhicl_to_record"):
        pytest.skip("archiver_resources.fhicl.fhicl_to_record not available yet")
    checked = 0
    for run, profile in ((1, "small"), (2, "typical"), (3, "large")):
        for path in sorted(generate_run_record(tmp_path, run, profile=profile, seed=run).glob("*.fcl")):
            record = fhicl.fhicl_to_record(path.read_text(), path.name)
            assert "daq" in record["document"]["data"]["main"], path.name
            checked += 1
    assert checked > 150


def test_converters_accept_the_generated_text_files(tmp_path):
    fhiclize = pytest.importorskip("archiver_resources.fhiclize")
    fhicl = pytest.importorskip("archiver_resources.fhicl")
    converters = getattr(fhiclize, "CONVERTERS", None)
    if not converters or not hasattr(fhicl, "fhicl_to_record"):
        pytest.skip("converters or FHiCL parser not available yet")
    methods = set()
    for run in range(1, 9):  # several seeds/runs so both process management methods appear
        run_dir = generate_run_record(tmp_path, run, profile="small" if run % 2 else "typical",
                                      finished=run % 3 != 0)
        for stem, convert in converters.items():
            out = convert((run_dir / f"{stem}.txt").read_text())
            assert out.strip(), stem
            fhicl.fhicl_to_record(out, f"{stem}.fcl")
        metadata = converters["metadata"]((run_dir / "metadata.txt").read_text())
        assert "components: [" in metadata and "boardreader_logfiles: [" in metadata
        method = re.search(r'process_management_method: "(\w+)"', metadata).group(1)
        methods.add(method)
        if method == "pmt":
            assert "pmt_logfiles_wildcard: " in metadata and "process_manager_logfiles: [" in metadata
    assert methods == {"direct", "pmt"}


def test_runrecords_sees_finished_and_running_generated_runs(tmp_path):
    runrecords = pytest.importorskip("archiver_resources.runrecords")
    if not hasattr(runrecords, "finished_state"):
        pytest.skip("archiver_resources.runrecords.finished_state not available yet")
    import time
    done = generate_run_record(tmp_path, 100)
    running = generate_run_record(tmp_path, 101, finished=False, mtime=time.time())
    crashed = generate_run_record(tmp_path, 102, finished=False)  # old mtime: finished by age
    assert runrecords.finished_state(100, done, min_age_seconds=3600).rule == "stop_time"
    assert runrecords.finished_state(101, running, min_age_seconds=3600).rule == "running"
    assert runrecords.finished_state(102, crashed, min_age_seconds=3600).rule == "age"
    mark_finished(running)
    assert runrecords.finished_state(101, running, min_age_seconds=3600).finished


# ---------------------------------------------------------------------------- API edges


def test_existing_run_dir_is_refused_unless_overwrite(tmp_path):
    generate_run_record(tmp_path, 5, seed=1)
    with pytest.raises(FileExistsError):
        generate_run_record(tmp_path, 5, seed=2)
    generate_run_record(tmp_path, 5, seed=2, overwrite=True)
    expected = generate_run_record(tmp_path / "fresh", 5, seed=2)
    assert tree_digest(tmp_path / "5") == tree_digest(expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["5", "fresh"]  # no staging leftovers


def test_generate_run_records_and_parse_runs(tmp_path):
    paths = generate_run_records(tmp_path, parse_runs("10-12,15"), profile="small")
    assert [p.name for p in paths] == ["10", "11", "12", "15"]
    assert parse_runs("3, 1-2,2") == [1, 2, 3]
    for bad in ("", "5-3", "a-b", "1-2-3"):
        with pytest.raises(ValueError):
            parse_runs(bad)


# ---------------------------------------------------------------------------- CLI


def test_cli_writes_runs_and_is_idempotent(tmp_path, capsys):
    out = tmp_path / "records"
    assert main(["--out", str(out), "--runs", "1000-1002", "--unfinished", "1002",
                 "--profile", "small"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["1000", "1001", "1002"]
    assert "stop time" not in (out / "1002" / "metadata.txt").read_text()
    assert "stop time" in (out / "1000" / "metadata.txt").read_text()
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    capsys.readouterr()
    assert main(["--out", str(out), "--runs", "1000-1002", "--unfinished", "1002",
                 "--profile", "small"]) == 0
    assert "3 unchanged" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before


def test_cli_keeps_differing_runs_unless_forced(tmp_path, capsys):
    out = tmp_path / "records"
    main(["--out", str(out), "--runs", "7", "--profile", "small"])
    original = tree_digest(out / "7")
    assert main(["--out", str(out), "--runs", "7", "--profile", "small", "--seed", "1"]) == 1
    assert "--force" in capsys.readouterr().err
    assert tree_digest(out / "7") == original
    assert main(["--out", str(out), "--runs", "7", "--profile", "small", "--seed", "1", "--force"]) == 0
    assert tree_digest(out / "7", with_mtimes=False) == tree_digest(
        generate_run_record(tmp_path / "x", 7, profile="small", seed=1), with_mtimes=False)
    assert sorted(p.name for p in out.iterdir()) == ["7"]


def test_cli_auto_mtime_makes_unfinished_runs_look_running(tmp_path):
    out = tmp_path / "records"
    main(["--out", str(out), "--runs", "1-2", "--unfinished", "2", "--profile", "small"])
    import time
    assert abs((out / "2" / "metadata.txt").stat().st_mtime - time.time()) < 600
    assert int((out / "1" / "metadata.txt").stat().st_mtime) == run_times(1)[1]


def test_cli_help_and_usage_errors(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    help_text = capsys.readouterr().out
    for needle in ("--runs", "--profile", "--unfinished", "--force", "Idempotent", "huge:<MB>"):
        assert needle in help_text
    with pytest.raises(SystemExit) as exc:
        main(["--out", "/tmp/x", "--runs", "9-1"])
    assert exc.value.code == 2


def test_module_is_runnable_with_python_m(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(Path(samples.__file__).resolve().parents[1]))
    result = subprocess.run([sys.executable, "-m", "archiver_resources.samples", "--out", str(tmp_path),
                             "--runs", "4", "--profile", "small"], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "4" / "metadata.txt").is_file()
