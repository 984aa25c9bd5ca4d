"""Child process of the crash tests: archives run partitions with the two archive assets (batched
range runs, as backfills launch them) on the Dagster instance in $DAGSTER_HOME, and can SIGKILL itself at a chosen point.

    python -m tests.reliability.crash_child CONFIG BATCH KILL_AT KILL_COUNT RUN...

KILL_AT: ``-`` (never; the parent may still kill it at a random time), a filesystemdb write stage
prefix (``journal``, ``document:``, ``index:``, ``committed``), ``after-put`` (UconDB stored the
blob, nobody recorded it yet) or ``before-put``; the KILL_COUNT-th time it is reached.
"""

import os
import signal
import sys


def install_kill_point(kill_at: str, count: int) -> None:
    seen = [0]

    def reached() -> None:
        seen[0] += 1
        if seen[0] == count:
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    if kill_at in ("after-put", "before-put"):
        from archiver_resources.ucondb.client import UconDBClient

        real_put = UconDBClient.put_blob

        def put_blob(self, run, data, **kw):
            if kill_at == "before-put":
                reached()
            meta = real_put(self, run, data, **kw)
            if kill_at == "after-put":
                reached()
            return meta

        UconDBClient.put_blob = put_blob
    else:
        from archiver_resources.artdaqdb.filesystem import FilesystemArtdaqDB

        real_stage = FilesystemArtdaqDB._stage

        def _stage(self, stage):
            if stage.startswith(kill_at):
                reached()
            return real_stage(self, stage)

        FilesystemArtdaqDB._stage = _stage


def main(argv) -> int:
    config, batch, kill_at, count, *runs = argv
    if kill_at != "-":
        install_kill_point(kill_at, int(count))
    import dagster as dg

    from archiver_assets.archive.guard import WORKER_TAG, worker_identity
    from archiver_assets.definitions import build_definitions

    defs = build_definitions(config)
    # Both assets without their checks: a re-run of a range whose checks ran before fails in
    # Dagster's storage (see test_batched_range_with_checks_can_run_twice), which would hide
    # what this child is for: crash safety of the stores.
    job = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection={dg.AssetKey("artdaqdb_config"), dg.AssetKey("ucondb_blob")},
        asset_check_selection=set())
    keys = [str(int(r)) for r in runs]
    with dg.DagsterInstance.get() as instance:
        known = set(instance.get_dynamic_partitions("runs"))
        missing = [k for k in keys if k not in known]
        if missing:
            instance.add_dynamic_partitions("runs", missing)
        size = int(batch)
        for start in range(0, len(keys), size):
            chunk = keys[start:start + size]
            # Tagged with this process's identity from its creation, as the command line's
            # workers tag theirs: a kill before the first guarded step (the parent's kill at a
            # random time can come that early on a loaded machine) must not leave an untagged
            # STARTED run that the next child's guard waits for (nothing tells it is dead).
            result = job.execute_in_process(
                instance=instance, raise_on_error=False,
                tags={"dagster/asset_partition_range_start": chunk[0],
                      "dagster/asset_partition_range_end": chunk[-1],
                      WORKER_TAG: worker_identity()})
            print(f"range {chunk[0]}-{chunk[-1]}: {'ok' if result.success else 'failed'}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
