"""Fake bulkloader: records its call, then loads every *.fcl under -p into the filesystemdb of
ARTDAQ_DATABASE_URI as <run>/<config> (schema → SystemLayout, no hashes entity), like the C++."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import listing, log_call, open_store, parse, simulated_failure  # noqa: E402

args = parse("bulkloader")
log_call("bulkloader", listing=listing(args.path))
simulated_failure("bulkloader")
root = Path(args.path)
files = {str(p.relative_to(root)): p.read_text(encoding="utf-8") for p in root.rglob("*")
         if p.is_file() and ".fcl" in p.name}
store = open_store()
store.writes_hashes = False
try:
    store.archive_run(args.run, args.configuration, files)
except Exception as exc:  # the C++ reports and exits non-zero
    print(f"bulkloader: {exc}", file=sys.stderr)
    sys.exit(1)
print(f"Loaded {len(files)} files with {args.threads} threads in 1 msecs")
