"""``python -m archiver_assets.cli``: the command line (also the worker processes' command)."""

import sys

from archiver_assets.cli.main import main

sys.exit(main())
