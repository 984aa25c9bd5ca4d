"""The legacy RunHistory generators: ``RunHistory.fcl`` (initial insert) and ``RunHistory2.fcl``
(start/stop-time update), both derived from a run's original ``metadata.txt``.

Like the converters, they write valid FHiCL for any input: a value the legacy rule would write as
an invalid string is escaped, and the optional ``repairs`` list receives each change."""

from __future__ import annotations

import re
from typing import Optional

from .converters import _checked_array, _checked_string, _clean, _pair
from .repair import Repair

__all__ = ["run_history", "run_history2"]

_CONFIG_NAME = re.compile(r"^Config name:\s*(.+)")
_COMPONENT = re.compile(r"^Component #\d+:\s*(.+)")
_STOP_TIME = re.compile(r"^DAQInterface stop time:\s+(.*)")
_START_TIME = re.compile(r"^DAQInterface start time:\s+(.*)")


def run_history(run: int, metadata_text: str, *,
                repairs: Optional[list[Repair]] = None) -> str:
    """``RunHistory.fcl``: run number, last ``Config name`` (``/`` kept) and the components.

    Each item is followed by an empty line; a missing item is omitted.
    """
    repairs = repairs if repairs is not None else []
    config_name: Optional[tuple[int, str, str]] = None
    components: list[tuple[int, str, str]] = []
    for number, line in enumerate(metadata_text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _CONFIG_NAME.match(stripped)
        if match:
            config_name = (number, line, match.group(1).strip())
            continue
        match = _COMPONENT.match(stripped)
        if match:
            components.append((number, line, match.group(1).strip()))
    items = [f"run_number: {run}"]
    if config_name and config_name[2]:
        number, line, name = config_name
        written = _checked_string(name, name, "the configuration name", number, repairs)
        items.append(_pair("config_name", written, ((number, line),), repairs))
    if components:
        written = _checked_array([_checked_string(value, value, "a component", number, repairs)
                                  for number, _, value in components])
        origin = tuple((number, line) for number, line, _ in components)
        items.append(_pair("components", written, origin, repairs))
    return "".join(f"{item}\n\n" for item in items)


def run_history2(metadata_text: str, *, repairs: Optional[list[Repair]] = None) -> str | None:
    """``RunHistory2.fcl``: the start/stop-time lines of metadata.txt in file order.

    Values are taken as they are (escaped only where that is no valid FHiCL string), non-ASCII
    characters become ``.``, lines are joined with newlines and there is no trailing newline.
    ``None`` when neither time is present (legacy: no update).
    """
    repairs = repairs if repairs is not None else []
    lines: list[str] = []
    for number, line in enumerate(metadata_text.splitlines(), 1):
        for pattern, key in ((_STOP_TIME, "DAQInterface_stop_time"),
                             (_START_TIME, "DAQInterface_start_time")):
            match = pattern.search(line)
            if match:
                value = _clean(match.group(1))
                written = _checked_string(value, value, f"value of {key}", number, repairs)
                lines.append(_pair(key, written, ((number, _clean(line)),), repairs))
    if not lines:
        return None
    return "\n".join(lines)
