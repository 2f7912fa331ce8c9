"""Small NWB files shaped like a DANDI reaching session (MC_Maze-like trials and behaviour),
written with pynwb at test time, with the ground truth they were written from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

DIRECTIONS = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
CELL_TYPES = ("RS", "FS")
BEHAVIOR_RATE_HZ = 1000.0
EDGE_S = 1e-9


@dataclass
class Session:
    path: Path
    spike_times: list[np.ndarray]
    columns: dict[str, np.ndarray]  # trials table, seconds
    cell_type: np.ndarray
    waveform: np.ndarray
    hand_times: np.ndarray
    hand_vel: np.ndarray  # [samples, 2]


def write_session(
    path: Path,
    n_units: int = 12,
    n_trials: int = 40,
    seed: int = 0,
    units: bool = True,
    trials: bool = True,
    behavior: bool = True,
    nan_move_onset_trial: int | None = 5,
    silent_units: int = 0,
    observed_until_s: float | None = None,
) -> Session:
    """Trials of 1 s every 1.25 s from t = 0; go cue 0.1-0.5 s into the trial, movement onset
    150-250 ms after it (NaN in `nan_move_onset_trial`). In the first and last trial the go cue
    comes at 0.1 s and movement 0.15 s later, so a window from 300 ms before either starts
    before the recording."""
    from pynwb import NWBHDF5IO, TimeSeries
    from pynwb.testing.mock.file import mock_NWBFile

    rng = np.random.default_rng(seed)
    start = np.arange(n_trials) * 1.25
    go = start + rng.uniform(0.1, 0.5, n_trials)
    move = go + rng.uniform(0.15, 0.25, n_trials)
    go[[0, -1]] = start[[0, -1]] + 0.1
    move[[0, -1]] = go[[0, -1]] + 0.15
    if nan_move_onset_trial is not None and nan_move_onset_trial < n_trials:
        move[nan_move_onset_trial] = np.nan
    columns = {
        "start_time": start,
        "stop_time": start + 1.0,
        "go_cue_time": go,
        "move_onset_time": move,
        "target_on_time": start + 0.05,
        "trial_type": rng.integers(1, 3, n_trials),
        "trial_version": rng.integers(0, 2, n_trials),
        "target_pos": DIRECTIONS[np.arange(n_trials) % len(DIRECTIONS)],
    }
    end = start[-1] + 1.25
    spike_times = [np.sort(rng.uniform(0, end, rng.poisson(20 * end))) for _ in range(n_units)]
    spike_times += [np.array([end + 10.0])] * silent_units  # units that fire only after the last trial
    n_units += silent_units
    cell_type = np.array([CELL_TYPES[unit % 3 == 2] for unit in range(n_units)])
    waveform = np.where(cell_type == "FS", "narrow", "wide")
    hand_times = np.arange(0, end, 1 / BEHAVIOR_RATE_HZ)
    hand_vel = np.stack([np.sin(2 * np.pi * hand_times), np.cos(3 * hand_times)], axis=1)

    nwbfile = mock_NWBFile(session_description="test reaching session", identifier=f"test-session-{seed}")
    if units:
        nwbfile.add_unit_column("cell_type", "putative type from spike width")
        nwbfile.add_unit_column("waveform", "spike width class")
        nwbfile.add_unit_column("heldout", "held out in NLB")
        observed = {} if observed_until_s is None else {"obs_intervals": [[0.0, observed_until_s]]}
        for unit, times in enumerate(spike_times):
            labels = dict(cell_type=cell_type[unit], waveform=waveform[unit], heldout=False)
            nwbfile.add_unit(spike_times=times, **labels, **observed)
    if trials:
        for name in columns:
            if name not in ("start_time", "stop_time"):
                nwbfile.add_trial_column(name, f"{name} of each trial")
        for trial in range(n_trials):
            nwbfile.add_trial(**{name: values[trial] for name, values in columns.items()})
    if behavior:
        module = nwbfile.create_processing_module("behavior", "hand kinematics")
        module.add(TimeSeries(name="hand_vel", data=hand_vel, unit="m/s", timestamps=hand_times))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)
    return Session(path, spike_times, columns, cell_type, waveform, hand_times, hand_vel)


def bin_by_hand(session: Session, zero_s: np.ndarray, window_ms: tuple[float, float], bin_ms: float) -> np.ndarray:
    """Counts [trials, bins, units] with a plain loop: spikes in [lo, hi) of each bin, edges
    up to float rounding (1 ns) counted in the later bin."""
    n_bins = round((window_ms[1] - window_ms[0]) / bin_ms)
    counts = np.zeros((len(zero_s), n_bins, len(session.spike_times)), dtype=np.int64)
    for trial, zero in enumerate(zero_s):
        for k in range(n_bins):
            lo = zero + (window_ms[0] + k * bin_ms) / 1000 - EDGE_S
            hi = zero + (window_ms[0] + (k + 1) * bin_ms) / 1000 - EDGE_S
            for unit, times in enumerate(session.spike_times):
                counts[trial, k, unit] = np.count_nonzero((times >= lo) & (times < hi))
    return counts


def _is_ragged(values: np.ndarray | list) -> bool:
    return isinstance(values, list) and len(values) > 0 and isinstance(values[0], list)


def write_tables(
    path: Path,
    spike_times: list[np.ndarray] | None,
    tables: dict[str, dict[str, np.ndarray | list]],
    descriptions: dict[str, str] | None = None,
) -> Path:
    """An NWB file with one unit per spike train (None: an empty units table) and one intervals
    table per entry of `tables` (name -> columns, start_time and stop_time among them; no
    columns: an empty table; a column given as a list of lists is ragged, indexed), written as
    labs write them: `trials` with add_trial, others as TimeIntervals under /intervals."""
    from pynwb import NWBHDF5IO
    from pynwb.epoch import TimeIntervals
    from pynwb.misc import Units
    from pynwb.testing.mock.file import mock_NWBFile

    nwbfile = mock_NWBFile(session_description="test session", identifier=path.stem)
    if spike_times is None:
        nwbfile.units = Units(name="units", description="no units")
    for times in spike_times or ():
        nwbfile.add_unit(spike_times=np.asarray(times, dtype=float))
    for name, columns in tables.items():
        extra = [column for column in columns if column not in ("start_time", "stop_time")]
        rows = [
            {column: values[row] for column, values in columns.items()}
            for row in range(len(columns.get("start_time", ())))
        ]
        ragged = {column: _is_ragged(columns[column]) for column in extra}
        if name == "trials" and rows:
            for column in extra:
                nwbfile.add_trial_column(column, (descriptions or {}).get(column, column), index=ragged[column])
            for row in rows:
                nwbfile.add_trial(**row)
            continue
        table = TimeIntervals(name=name, description=name)
        for column in extra:
            table.add_column(column, (descriptions or {}).get(column, column), index=ragged[column])
        for row in rows:
            table.add_row(**row)
        nwbfile.add_time_intervals(table)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)
    return path


def write_light_session(
    path: Path,
    spike_times: list[np.ndarray],
    trials: dict[str, np.ndarray],
    power_w: np.ndarray,
    rate_hz: float,
    site_description: str,
    acquired: bool = False,
) -> Path:
    """An NWB file whose perturbations are only an OptogeneticSeries (power in W, sampled at
    `rate_hz` from t = 0) at an OptogeneticStimulusSite "photostim" described by
    `site_description`, beside a units and a trials table: in stimulus/ with a rate, or
    (`acquired`) in acquisition/ with timestamps, as a measured power trace is stored."""
    from pynwb import NWBHDF5IO
    from pynwb.ogen import OptogeneticSeries
    from pynwb.testing.mock.file import mock_NWBFile

    nwbfile = mock_NWBFile(session_description="light session", identifier=path.stem)
    device = nwbfile.create_device(name="473 nm laser", description="laser")
    site = nwbfile.create_ogen_site(
        name="photostim", device=device, description=site_description, excitation_lambda=473.0, location="M1"
    )
    if acquired:
        timestamps = np.arange(len(power_w)) / rate_hz
        nwbfile.add_acquisition(OptogeneticSeries(name="laser_power", data=power_w, site=site, timestamps=timestamps))
    else:
        series = OptogeneticSeries(name="laser_power", data=power_w, site=site, rate=rate_hz, starting_time=0.0)
        nwbfile.add_stimulus(series)
    for times in spike_times:
        nwbfile.add_unit(spike_times=np.asarray(times, dtype=float))
    for row in range(len(trials["start_time"])):
        nwbfile.add_trial(**{name: values[row] for name, values in trials.items()})
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)
    return path
