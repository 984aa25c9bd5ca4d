"""Fake bulkdownloader: records its call, then writes <run>/<config> from the filesystemdb as
<path>/<config prefix>/<entity>.fcl and <path>/schema.fcl, like the C++."""

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import log_call, open_store, parse, simulated_failure  # noqa: E402

args = parse("bulkdownloader")
log_call("bulkdownloader")
simulated_failure("bulkdownloader")
store = open_store()
try:
    files = store.export_run(args.run, args.configuration)
except Exception as exc:
    print(f"bulkdownloader: {exc}", file=sys.stderr)
    sys.exit(1)
prefix = re.sub(r"\d+$", "", args.configuration)
for name, text in files.items():
    target = Path(args.path) / (name if name == "schema.fcl" else f"{prefix}/{name}")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
print(f"Downloaded {len(files)} files; 0 errors")
