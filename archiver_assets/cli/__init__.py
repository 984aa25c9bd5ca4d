"""``run-record-archiver``: the legacy command line on top of the Dagster jobs.

* ``main``: argument parsing, ``--help``, start-up, dispatch, exit codes (``main.main``).
* ``modes``: one function per mode (full pipeline, --incremental, --import-only, --migrate-only,
  the retries, --dry-run, --report-status, the recover modes, --reconcile, the legacy import).
* ``workers``: the command line's worker processes, which execute the Dagster jobs.

``archiver_assets.cli:main`` stays the console script's entry point (installed scripts import it
from here), and ``python -m archiver_assets.cli`` runs it (``__main__``).
"""

from archiver_assets.cli.main import main

__all__ = ["main"]
