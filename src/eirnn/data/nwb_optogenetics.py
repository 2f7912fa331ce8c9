"""Perturbation windows from the `OptogeneticSeries` power traces of an NWB file (docs/data-format.md).

An `OptogeneticSeries` (in ``stimulus/`` or ``acquisition/``) is the light power (W) delivered at
its `OptogeneticStimulusSite` over time. Its perturbations are the runs of power above
POWER_THRESHOLD of the series' peak, runs less than MERGE_GAP_S (or one bin, if longer) apart
merged: a pulse train of 10 Hz or faster is one perturbation of its mean power, as a rate network
with a time constant of tens of ms sees it. Each has its mean power over the window, in mW, as
strength. What a site stimulated (target and kind) comes from the setting `optogenetic_sites`
(``SITE=TARGET/KIND;...``, or ``TARGET/KIND`` for every site, or ``ignore`` to leave the series
out), else from the site's description when it reads ``TARGET KIND`` ("I activation",
"units 3,7 inactivation"); TARGET is E, I or unit ids of the units table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from .perturbations import KINDS

#: a run of light is where the power exceeds this fraction of the series' peak
POWER_THRESHOLD = 0.05
#: runs of light closer than this (s) are one perturbation (a pulse train)
MERGE_GAP_S = 0.1
IGNORE = "ignore"
#: how the data facts name perturbations read from power traces
SERIES_SOURCE = "OptogeneticSeries"
SETTING = "setting 'optogenetic_sites' (--optogenetic-sites)"
#: "TARGET KIND" or "TARGET/KIND": E, I or "units 3,7" (unit ids), then a kind
MEANING = re.compile(r"^\s*(E|I|units?\s+[0-9][0-9,\s]*?|[0-9][0-9,\s]*?)\s*[/\s]\s*([a-z]+)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class SessionWindow:
    """A perturbation on the session clock, once per trial it overlaps: the trial's row in the
    trials table, the target ("E", "I" or unit ids "3,7"), kind, strength and window (s), label
    ("" for the default)."""

    trial: int
    target: str
    kind: str
    strength: float
    onset_s: float
    offset_s: float
    label: str = ""


def windows_in_trials(cut: Any, onset_s: float, offset_s: float, **perturbation: Any) -> list[SessionWindow]:
    """The window `onset_s..offset_s` once for every kept trial whose analysed window it overlaps
    (none for a window between trials)."""
    overlapping = cut.keep & (cut.starts_s < offset_s) & (cut.stops_s > onset_s)
    return [
        SessionWindow(trial=t, onset_s=onset_s, offset_s=offset_s, **perturbation) for t in np.flatnonzero(overlapping)
    ]


def optogenetic_windows(reader: Any, setting: str, cut: Any) -> tuple[list[SessionWindow], str] | None:
    """Every run of light of every OptogeneticSeries, once per kept trial whose analysed window it
    overlaps, and where they came from; None when the file has no series or `setting` is ignore."""
    series = _series(reader.file)
    if not series or setting.strip().lower() == IGNORE:
        return None
    meanings = _parse_setting(reader, setting, {item.site.name for item in series.values()})
    windows, sources = [], []
    for path, item in series.items():
        target, kind, how = _site_meaning(reader, path, item.site, meanings)
        times, power = _trace(reader, path, item)
        for onset, offset, strength in light_runs(times, power, max(MERGE_GAP_S, cut.bin_s)):
            windows += windows_in_trials(cut, onset, offset, target=target, kind=kind, strength=strength)
        sources.append(f"{path} (site {item.site.name}: {target} {kind}, {how})")
    return windows, f"{SERIES_SOURCE} " + "; ".join(sources)


def light_runs(times: np.ndarray, power_w: np.ndarray, min_gap_s: float) -> list[tuple[float, float, float]]:
    """(onset s, offset s, mean power mW) of each run of power above POWER_THRESHOLD of the peak;
    runs less than `min_gap_s` apart are one. A sample holds its power until the next sample."""
    peak = float(power_w.max()) if len(power_w) else 0.0
    if peak <= 0:
        return []
    on = power_w > POWER_THRESHOLD * peak
    edges = np.diff(np.concatenate([[0], on.astype(np.int8), [0]]))
    first, end = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)  # end: the sample after the run
    step = float(np.median(np.diff(times))) if len(times) > 1 else min_gap_s
    sample_end = np.append(times[1:], times[-1] + step)
    onset, offset = times[first], sample_end[end - 1]
    starts_group = np.concatenate([[True], onset[1:] - offset[:-1] >= min_gap_s])
    group_first = first[starts_group]
    group_end = end[np.append(np.flatnonzero(starts_group)[1:] - 1, len(end) - 1)]
    held = np.diff(sample_end, prepend=times[0])  # how long each sample's power lasts
    energy = np.concatenate([[0.0], np.cumsum(power_w * held)])
    runs = []
    for a, b in zip(group_first.tolist(), group_end.tolist()):
        start, stop = float(times[a]), float(sample_end[b - 1])
        runs.append((start, stop, 1000.0 * (energy[b] - energy[a]) / (stop - start)))
    return runs


def _series(nwbfile: Any) -> dict[str, Any]:
    return {
        f"{group_name}/{name}": item
        for group_name, group in (("stimulus", nwbfile.stimulus), ("acquisition", nwbfile.acquisition))
        for name, item in group.items()
        if type(item).__name__ == "OptogeneticSeries"
    }


def _meaning(text: str) -> tuple[str, str] | None:
    """("E"/"I"/"3,7", kind) of "TARGET KIND" or "TARGET/KIND"; None when it is not one."""
    match = MEANING.match(text)
    if match is None or match.group(2).lower() not in KINDS:
        return None
    target = re.sub(r"^units?\s+", "", match.group(1).strip(), flags=re.IGNORECASE)
    target = (
        target.upper() if target.upper() in ("E", "I") else ",".join(filter(None, map(str.strip, target.split(","))))
    )
    return target, match.group(2).lower()


def _parse_setting(reader: Any, setting: str, sites: set[str]) -> dict[str, tuple[str, str]]:
    """Site name ("*" for every site) -> (target, kind)."""
    expected = (
        "SITE=TARGET/KIND;... or TARGET/KIND for every site (TARGET E, I or unit ids 3,7; KIND "
        + " or ".join(KINDS)
        + "), or ignore"
    )
    meanings = {}
    for item in filter(None, (part.strip() for part in setting.split(";"))):
        site, _, meaning = item.rpartition("=")
        parsed = _meaning(meaning)
        if parsed is None:
            reader.fail(SETTING, expected, repr(item))
        if site and site.strip() not in sites:
            reader.fail(SETTING, f"sites of the file's OptogeneticSeries ({', '.join(sorted(sites))})", repr(site))
        meanings[site.strip() or "*"] = parsed
    return meanings


def _site_meaning(reader: Any, path: str, site: Any, meanings: dict[str, tuple[str, str]]) -> tuple[str, str, str]:
    if site.name in meanings or "*" in meanings:
        return (*meanings.get(site.name, meanings.get("*")), "as given")
    parsed = _meaning(site.description or "")
    if parsed is None:
        reader.fail(
            f"OptogeneticStimulusSite '{site.name}' (of OptogeneticSeries '{path}')",
            "a description 'TARGET KIND' (e.g. 'I activation', 'units 3,7 inactivation') or --optogenetic-sites "
            f"'{site.name}=TARGET/KIND' (or ignore)",
            f"description {site.description!r}",
        )
    return (*parsed, "from the site's description")


def _trace(reader: Any, path: str, series: Any) -> tuple[np.ndarray, np.ndarray]:
    """Sample times (s) and power (W) of a series; one trace, finite increasing times."""
    data = np.asarray(series.data[:], dtype=float)
    if data.ndim == 2 and data.shape[1] == 1:
        data = data[:, 0]
    if data.ndim != 1:
        reader.fail(f"OptogeneticSeries '{path}', data", "one power trace (time,)", f"shape {data.shape}")
    power = data * series.conversion + (getattr(series, "offset", 0.0) or 0.0)
    times = np.asarray(series.get_timestamps(), dtype=float)
    if len(times) != len(power) or not np.isfinite(times).all() or (np.diff(times) <= 0).any():
        reader.fail(
            f"OptogeneticSeries '{path}', timestamps",
            f"{len(power)} finite, increasing times (s), one per sample",
            f"{len(times)} times" + ("" if len(times) != len(power) else ", not finite and increasing"),
        )
    if not np.isfinite(power).all() or (power < 0).any():
        reader.fail(f"OptogeneticSeries '{path}', data", "finite powers >= 0 (W)", "NaN, Inf or negative values")
    return times, power
