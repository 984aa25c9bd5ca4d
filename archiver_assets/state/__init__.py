"""Dagster state of the archive.

* ``reconcile``: rebuild partition status from the stores (the stores are the truth).
* ``legacy_import``: one-shot import of a legacy deployment's state files and failure logs.
* ``plan``: the candidate rules of the legacy flags over partition status; dry runs.
* ``partition_status``: read-only partition status per archive asset.
* ``events``: batched event writes and the failed marker run.
* ``stores``: the three stores' listings through the archive resources.

``build_state_definitions`` offers the jobs ``reconcile``, ``import_legacy_state`` and
``plan_archive`` to the code location.
"""

from typing import Optional

import dagster as dg

from archiver_assets.state.legacy_import import import_legacy_state_job
from archiver_assets.state.plan import plan_archive_job
from archiver_assets.state.reconcile import reconcile_job
from archiver_assets.resources import resources_for_config

STATE_JOBS = [reconcile_job, import_legacy_state_job, plan_archive_job]


def build_state_definitions(config_path: Optional[str] = None, *,
                            with_resources: bool = True) -> dg.Definitions:
    """The state jobs. Merge into the code location with ``with_resources=False``: the archive
    definitions already bind the same resource keys (``archiver_config``, ``run_records``,
    ``artdaqdb``, ``ucondb``, ``metrics``), and ``Definitions.merge`` refuses two bindings of one key."""
    resources = resources_for_config(config_path) if with_resources else {}
    return dg.Definitions(jobs=STATE_JOBS, resources=resources)
