"""The legacy RunHistory generators: ``RunHistory.fcl`` (initial insert) and ``RunHistory2.fcl``
(start/stop-time update), both derived from a run's original ``metadata.txt`` (§5.11, §5.2)."""

from __future__ import annotations

import re

from .converters import _array, _clean

__all__ = ["run_history", "run_history2"]

_CONFIG_NAME = re.compile(r"^Config name:\s*(.+)")
_COMPONENT = re.compile(r"^Component #\d+:\s*(.+)")
_STOP_TIME = re.compile(r"^DAQInterface stop time:\s+(.*)")
_START_TIME = re.compile(r"^DAQInterface start time:\s+(.*)")


def run_history(run: int, metadata_text: str) -> str:
    """``RunHistory.fcl``: run number, last ``Config name`` (``/`` kept) and the components (§5.11).

    Each item is followed by an empty line; a missing item is omitted.
    """
    config_name = None
    components: list[str] = []
    for line in metadata_text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _CONFIG_NAME.match(stripped)
        if match:
            config_name = match.group(1).strip()
            continue
        match = _COMPONENT.match(stripped)
        if match:
            components.append(match.group(1).strip())
    items = [f"run_number: {run}"]
    if config_name:
        items.append(f'config_name: "{config_name}"')
    if components:
        items.append(f"components: {_array(components)}")
    return "".join(f"{item}\n\n" for item in items)


def run_history2(metadata_text: str) -> str | None:
    """``RunHistory2.fcl``: the start/stop-time lines of metadata.txt in file order (§5.2).

    Values are taken as they are (not escaped), non-ASCII characters become ``.``, lines are
    joined with newlines and there is no trailing newline. ``None`` when neither time is present
    (legacy: no update).
    """
    lines = []
    for line in metadata_text.splitlines():
        match = _STOP_TIME.search(line)
        if match:
            lines.append(f'DAQInterface_stop_time: "{match.group(1)}"')
        match = _START_TIME.search(line)
        if match:
            lines.append(f'DAQInterface_start_time: "{match.group(1)}"')
    if not lines:
        return None
    return "\n".join(_clean(line) for line in lines)
