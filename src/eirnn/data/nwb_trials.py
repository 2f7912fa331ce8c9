"""Which trials of an NWB file are read, and what they hold: the intervals table of the trials
(``--trials-table``), the filters that keep some of them (``--keep-trials``), condition values as
labs store them (numbers, text, bytes, with NaN/None/empty for catch trials) and the checks that
trial and event times are seconds on the session clock (docs/data-format.md).

Functions take the NWB reader of `eirnn.data.nwb` (`reader.fail`, `reader.column`) so that every
refusal is one line naming the file, the table and the column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from .binning import time_unit_problem
from .dataset import DatasetError
from .value_checks import as_text

DEFAULT_TRIALS_TABLE = "trials"
#: text read as a missing value in a condition column (pandas and MATLAB exports write these)
MISSING_TEXT = frozenset({"", "nan", "none", "null", "n/a", "na"})
#: an event column is read as session-clock seconds when at least this share of its finite
#: values lies within its own trial; fewer means times relative to each trial's start, or in ms
EVENTS_INSIDE_TRIALS = 0.5
VALUES_SHOWN = 8


def object_path(obj: Any, root_group: str) -> str:
    """An NWB object's path: 'processing/MODULE/NAME', or `root_group`/NAME for objects at the root
    (TimeSeries in 'acquisition', interval tables in 'intervals')."""
    parts, parent = [obj.name], obj.parent
    while parent is not None and parent.parent is not None:
        parts.append(parent.name)
        parent = parent.parent
    return "/".join([root_group if len(parts) == 1 else "processing", *reversed(parts)])


def interval_tables(nwbfile: Any) -> dict[str, Any]:
    """path -> table, for every table in the file with start_time and stop_time columns."""
    from hdmf.common import DynamicTable

    tables = {
        object_path(obj, "intervals"): obj
        for obj in nwbfile.objects.values()
        if isinstance(obj, DynamicTable) and {"start_time", "stop_time"} <= set(obj.colnames)
    }
    return dict(sorted(tables.items()))


def tables_listing(nwbfile: Any) -> str:
    """'intervals/encoding_table (120 rows: start_time, stop_time, stimCategory), ...' or 'none'."""
    shown = [
        f"{path} ({len(table)} rows: {', '.join(table.colnames)})" for path, table in interval_tables(nwbfile).items()
    ]
    return "; ".join(shown) or "none"


def find_trials_table(reader: Any, name: str) -> tuple[Any, str]:
    """The table named `name` (a name or a path; empty = 'trials') and its path, refused with the
    file's interval tables listed when there is no such table or it has no rows."""
    tables = interval_tables(reader.file)
    wanted = (name or DEFAULT_TRIALS_TABLE).strip().strip("/")
    matches = [path for path in tables if path == wanted or path.endswith("/" + wanted)]
    where = f"table '{wanted}'" + (" (--trials-table)" if name else "")
    if len(matches) != 1:
        found = "none in this file" if not matches else " and ".join(matches)
        reader.fail(
            where,
            "one table of trials with start_time, stop_time and event columns (another intervals table: "
            "--trials-table NAME)",
            f"{found}; interval tables in this file: {tables_listing(reader.file)}",
        )
    table = tables[matches[0]]
    if len(table) == 0:
        reader.fail(where, "at least one trial", "an empty table")
    return table, matches[0]


def numbers(reader: Any, table: Any, name: str, expected: str) -> np.ndarray:
    """A column of one number per row as floats (None -> NaN), refused when it holds text."""
    values = reader.column(table, name, expected)
    if isinstance(values, list) or np.ndim(values) != 1:
        reader.fail(f"table '{table.name}', column '{name}'", expected, "several values per row")
    if values.dtype.kind in "biuf":
        return values.astype(float)
    items = [np.nan if item is None else item for item in values.tolist()]
    try:
        return np.array(items, dtype=float)
    except (TypeError, ValueError):
        text = next(item for item in items if not _is_number(item))
        reader.fail(f"table '{table.name}', column '{name}'", f"{expected}: numbers", f"text such as {text!r}")


def is_event(table: Any, spec: str) -> bool:
    """Whether `spec` names event times of `table`: a column, or columns joined by '+'."""
    return all(part.strip() in (*table.colnames, "start_time", "stop_time") for part in spec.split("+"))


def event_times(reader: Any, table: Any, spec: str, expected: str) -> np.ndarray:
    """Event times (s) on the session clock from a column, or from the sum of columns joined by '+':
    'start_time+CueTime' for events stored relative to each trial's start_time (as the Svoboda
    lab's sessions store them)."""
    parts = [part.strip() for part in spec.split("+")]
    return np.sum([numbers(reader, table, part, expected) for part in parts], axis=0)


def _is_number(item: Any) -> bool:
    try:
        float(item)
    except (TypeError, ValueError):
        return False
    return True


# ---------------------------------------------------------------------- trial bounds and event times
def check_event_times(
    reader: Any, table: Any, name: str, times: np.ndarray, starts: np.ndarray, stops: np.ndarray
) -> None:
    """Refuse an event column whose times mostly lie outside their own trials: seconds relative to
    each trial's start, or milliseconds, read as session-clock seconds would cut the wrong spikes."""
    finite = np.isfinite(times) & np.isfinite(starts) & np.isfinite(stops)
    if not finite.any():
        return
    inside = (times >= starts) & (times <= stops)
    if inside[finite].mean() >= EVENTS_INSIDE_TRIALS:
        return
    first = int(np.flatnonzero(finite & ~inside)[0])
    reader.fail(
        f"table '{table.name}', column '{name}'",
        "event times in seconds on the session clock, within their trials (start_time..stop_time)",
        f"{int((finite & ~inside).sum())} of {int(finite.sum())} outside their own trial (row {first}: "
        f"{times[first]:g} s, trial {starts[first]:g}..{stops[first]:g} s): times relative to each trial's "
        f"start (then align on start_time+{name}), or in ms?",
    )


def check_time_units(
    reader: Any, trials: Any, units: Any, trains: list[np.ndarray], starts: np.ndarray, stops: np.ndarray
) -> None:
    """Refuse spike times and trial times in different units (`time_unit_problem`): ms read as s
    cut windows where no spike is, or silence most units."""
    problem = time_unit_problem(trains, starts, float(np.nanmax(stops)))
    if problem and problem[0] == "spikes":
        reader.fail(
            "table 'units', column 'spike_times'",
            f"spike times in seconds on the session clock of table '{trials.name}'",
            f"unit id {np.asarray(units.id.data[:])[problem[1]]}: {problem[2]}",
        )
    if problem:
        reader.fail(
            f"table '{trials.name}', column 'start_time'",
            "trial times in seconds on the clock of the spikes",
            problem[2],
        )


# ---------------------------------------------------------------------- filters (--keep-trials)
@dataclass(frozen=True)
class TrialFilter:
    """`column` = values keeps the trials holding one of the values; `column` != values drops them."""

    column: str
    values: tuple[str, ...]
    keep: bool

    def __str__(self) -> str:
        return f"{self.column}{'=' if self.keep else '!='}{','.join(self.values)}"


FILTER_SYNTAX = "COLUMN=VALUE[,VALUE...] or COLUMN!=VALUE[,VALUE...], joined by ';', e.g. 'success=1;stimCategory=0,1'"


def parse_trial_filters(text: str, source: str) -> list[TrialFilter]:
    """'success=1;stimCategory!=nan' -> [TrialFilter('success', ('1',), True), ...]."""
    filters = []
    for part in filter(None, (piece.strip() for piece in (text or "").split(";"))):
        match = re.fullmatch(r"([^=!]+?)\s*(!?=)\s*(.*)", part)
        values = tuple(value.strip() for value in match.group(3).split(",")) if match else ()
        if not match or not any(values):
            raise DatasetError(
                f"{source}: setting 'keep_trials' (--keep-trials): expected {FILTER_SYNTAX}; found {text!r}"
            )
        filters.append(TrialFilter(match.group(1).strip(), values, match.group(2) == "="))
    return filters


def value_key(item: Any) -> Any:
    """The form values are compared in: numbers, booleans and numeric text as floats (1 == 1.0 ==
    True == '1'), 'true'/'false' as 1.0/0.0, bytes as text, NaN/None as 'nan', other text stripped."""
    item = as_text(item.item() if isinstance(item, np.generic) else item)
    if item is None:
        return "nan"
    if isinstance(item, (bool, int, float)):
        return "nan" if np.isnan(item) else float(item)
    text = str(item).strip()
    if text.lower() in ("true", "false"):
        return float(text.lower() == "true")
    try:
        number = float(text)
    except ValueError:
        return text
    return "nan" if np.isnan(number) else number


def filter_mask(reader: Any, table: Any, trial_filter: TrialFilter) -> np.ndarray:
    """True for the trials `trial_filter` keeps; refused when the column is missing, holds several
    values per trial, or no trial holds any of the values it keeps."""
    where = f"table '{table.name}', column '{trial_filter.column}' (--keep-trials {trial_filter})"
    column = reader.column(table, trial_filter.column, "a column to keep trials by (--keep-trials)")
    if isinstance(column, list) or np.ndim(column) != 1:
        reader.fail(where, "one value per trial", "several values per trial")
    keys = [value_key(item) for item in column.tolist()]
    wanted = {value_key(value) for value in trial_filter.values}
    holds = np.array([key in wanted for key in keys], dtype=bool)
    if trial_filter.keep and not holds.any():
        present = sorted({str(plain_label(item)) for item in column.tolist()})
        more = ", ..." if len(present) > VALUES_SHOWN else ""
        reader.fail(
            where,
            "at least one trial with one of these values",
            f"none; values: {', '.join(present[:VALUES_SHOWN])}{more}",
        )
    return holds if trial_filter.keep else ~holds


# ---------------------------------------------------------------------- conditions
def plain_label(value: Any) -> Any:
    """A condition value as a label: whole numbers as ints, bytes as text, vectors as tuples;
    None where it is missing (NaN, None, empty or 'nan' text)."""
    if isinstance(value, np.ndarray):
        if value.ndim:
            parts = tuple(plain_label(item) for item in value.tolist())
            return None if not parts or any(part is None for part in parts) else parts
        value = value.item()
    if isinstance(value, (list, tuple)):
        parts = tuple(plain_label(item) for item in value)
        return None if not parts or any(part is None for part in parts) else parts
    value = as_text(value.item() if isinstance(value, np.generic) else value)
    if value is None:
        return None
    if isinstance(value, str):
        return None if value.strip().lower() in MISSING_TEXT else value.strip()
    if isinstance(value, float):
        return None if not np.isfinite(value) else int(value) if value.is_integer() else value
    return value


def _sort_key(label: Any) -> tuple:
    return (0, label, "") if isinstance(label, (int, float)) and not isinstance(label, bool) else (1, 0, str(label))


def condition_columns(trials: Any, condition: str, default_names: tuple[str, ...]) -> list[str]:
    """The columns named by --condition, else the first default name the table has."""
    columns = [name.strip() for name in condition.split(",") if name.strip()]
    return columns or [name for name in default_names if name in trials.colnames][:1]


def condition_values(reader: Any, trials: Any, columns: list[str]) -> tuple[list[Any], np.ndarray]:
    """Each trial's label ('a, b' for combinations) and which trials miss one (NaN/None/empty)."""
    values = [reader.column(trials, name, "a condition column of the trials table") for name in columns]
    per_trial = [tuple(plain_label(np.asarray(column[row])) for column in values) for row in range(len(trials))]
    missing = np.array([any(part is None for part in parts) for parts in per_trial], dtype=bool)
    if len(columns) == 1:
        labels = [parts[0] for parts in per_trial]
    else:
        labels = [", ".join(str(part) for part in parts) for parts in per_trial]
    return [str(label) if isinstance(label, tuple) else label for label in labels], missing


def condition_codes(labels: list[Any]) -> tuple[np.ndarray, list[Any]]:
    """Codes 0..k-1 in the sorted order of the labels (numbers first), and the sorted labels."""
    ordered = sorted(set(labels), key=_sort_key)
    code_of = {label: code for code, label in enumerate(ordered)}
    return np.array([code_of[label] for label in labels], dtype=np.int64), ordered
