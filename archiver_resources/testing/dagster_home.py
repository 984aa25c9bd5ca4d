"""A DAGSTER_HOME rendered from one of the repository's ``deploy/`` templates (tests, bench).

Reads ``deploy/`` from the checkout this package lives in: it needs a repository checkout, not
only an installed package."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def render_home(home: Path, template: Path, *, drop_lines: tuple = ()) -> Path:
    """Copy a dagster.yaml template into ``home`` (optionally without lines containing any of
    ``drop_lines``, to prove what they are for); the template's secrets stay ``env:`` references."""
    home.mkdir(parents=True, exist_ok=True)
    text = template.read_text()
    if drop_lines:
        text = "\n".join(line for line in text.splitlines()
                         if not any(marker in line for marker in drop_lines)) + "\n"
    (home / "dagster.yaml").write_text(text)
    return home
