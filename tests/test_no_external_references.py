"""Every reference in the repository can be followed from the repository.

Code, docs, scripts and tests must state the rules they rely on (in a comment, or in a docs/ page
they name with its section), never point at documents that are not in the repository (the
behaviour reference of the legacy tool, design notes, numbered decisions, tracker issues). A
section sign ``§`` must name a docs page (``docs/formats.md §5.6``), except inside a docs page,
where a bare ``§N`` means a section of that same page; either way the section must exist.
"""

import re
import subprocess
from pathlib import Path
from typing import Iterable, Optional

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

# Pointers at documents outside the repository.
EXTERNAL = re.compile("|".join([
    r"\bspec §", r"\b[Ll]egacy §", r"shared/spec", r"dagster_notes", r"legacy_archiver",
    r"ucondb_api", r"artdaq_database\.md", r"\b[Ii]ssues? #?[0-9]+", r"\bDecisions? [0-9]+",
]))
# A section reference, with the page it names when there is one.
SECTION = re.compile(r"(?:([\w./-]+\.md)\s*)?§\s*(\d+(?:\.\d+)*)")
HEADING = re.compile(r"^#+\s+(\d+(?:\.\d+)*)[.\s]")


def _headings(page: Path, cache: dict) -> Optional[set]:
    """The section numbers of a docs page's headings, or None when there is no such page."""
    if page not in cache:
        try:
            text = page.read_text(encoding="utf-8")
        except OSError:
            cache[page] = None
        else:
            cache[page] = {m.group(1) for m in map(HEADING.match, text.splitlines()) if m}
    return cache[page]


def _resolve(name: str) -> Path:
    """A page named in a reference: ``docs/x.md``, ``x.md`` (a docs page) or a path from the root."""
    candidate = ROOT / name
    return candidate if candidate.exists() else DOCS / Path(name).name


def find_external_references(paths: Iterable[Path], root: Path = ROOT) -> list:
    """``file:line: text`` for each line of ``paths`` that points outside the repository or at a
    docs section that does not exist."""
    found = []
    cache: dict = {}
    for path in paths:
        try:
            text = path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue  # binary (images) or unreadable
        if "\0" in text:
            continue
        try:
            shown = path.relative_to(root)
        except ValueError:
            shown = path
        for number, line in enumerate(text.splitlines(), start=1):
            problems = [m.group(0) for m in EXTERNAL.finditer(line)]
            for match in SECTION.finditer(line):
                page_name, section = match.groups()
                if page_name:
                    page = _resolve(page_name)
                elif path.suffix == ".md":
                    page = path
                else:
                    problems.append(f"{match.group(0)} (names no docs page)")
                    continue
                headings = _headings(page, cache)
                if headings is None:
                    problems.append(f"{match.group(0)} (no page {page_name or path.name})")
                elif section not in headings:
                    problems.append(f"{match.group(0)} (no section {section} in {page.name})")
            if problems:
                found.append(f"{shown}:{number}: {'; '.join(problems)}: {line.strip()[:160]}")
    return found


def tracked_files() -> list:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    this = Path(__file__).resolve()
    return [ROOT / name for name in out.stdout.decode().split("\0")
            if name and (ROOT / name).resolve() != this and (ROOT / name).is_file()]


def test_no_tracked_file_points_outside_the_repository():
    found = find_external_references(tracked_files())
    assert not found, "references nobody can follow:\n" + "\n".join(found)


def test_the_check_catches_an_injected_reference(tmp_path):
    code = tmp_path / "module.py"
    code.write_text('"""Fine line."""\n# the rule of spec §9.1 applies\nx = 1  # see issue 6\n'
                    "# docs/formats.md §5.6 exists\n# docs/formats.md §99 does not\n"
                    "# bare §4 in code\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text("# Page\n## 1. One\nSee §1 and §2; Decision 8 says so.\n"
                    "Read legacy_archiver.md.\n", encoding="utf-8")
    found = find_external_references([code, page], root=tmp_path)
    assert [f.split(":", 2)[:2] for f in found] == [
        ["module.py", "2"], ["module.py", "3"], ["module.py", "5"], ["module.py", "6"],
        ["page.md", "3"], ["page.md", "4"]]
    assert "spec §" in found[0] and "issue 6" in found[1] and "no section 99" in found[2]
    assert "names no docs page" in found[3]
    assert "no section 2 in page.md" in found[4] and "Decision 8" in found[4]
