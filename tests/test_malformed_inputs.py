"""Malformed recordings as labs write them, one test per class: each ends in one line that names
the file and the variable or column (DatasetError; `eirnn summary` and `eirnn train` exit 2, and
the training run ends FAILED, never left RUNNING), or, where the file is usable, loads with what
was dropped reported."""

import h5py
import numpy as np
import pytest
import scipy.io
from nwb_sessions import write_light_session, write_tables

from eirnn.cli import main
from eirnn.data import DatasetError, load_dataset

N_TRIALS, N_UNITS = 12, 4
TRIAL_S, EVERY_S = 1.5, 2.0


def _trains(seed=0, end=N_TRIALS * EVERY_S, scale=1.0):
    rng = np.random.default_rng(seed)
    return [np.sort(rng.uniform(0, end, 40 * int(end))) * scale for _ in range(N_UNITS)]


def _trials(**changes):
    start = np.arange(N_TRIALS) * EVERY_S
    columns = {
        "start_time": start,
        "stop_time": start + TRIAL_S,
        "go_time": start + 0.5,
        "stim": np.arange(N_TRIALS) % 3,
    }
    return {**columns, **changes}


def _opto_trials(**changes):
    """Trials with ragged perturbation columns: every third trial (1, 4, ...) has two, E then I."""
    start = _trials()["start_time"]
    two = [trial % 3 == 1 for trial in range(N_TRIALS)]
    columns = {
        "perturbation_target": [["E", "I"] if on else [] for on in two],
        "perturbation_kind": [["activation", "inactivation"] if on else [] for on in two],
        "perturbation_onset_time": [[t + 0.2, t + 0.6] if on else [] for t, on in zip(start, two)],
        "perturbation_offset_time": [[t + 0.4, t + 0.8] if on else [] for t, on in zip(start, two)],
        "perturbation_power": [[1.0, 3.0] if on else [] for on in two],
    }
    return _trials(**{**columns, **changes})


#: perturbation windows in s from each trial's start, not on the session clock
RELATIVE_WINDOWS = {
    f"perturbation_{edge}_time": [[first, second] if t % 3 == 1 else [] for t in range(N_TRIALS)]
    for edge, first, second in (("onset", 0.2, 0.6), ("offset", 0.4, 0.8))
}


def _nwb(trains=(), tables=None, **options):
    """A builder: (tmp_path) -> (path, load options); trains None: an empty units table."""

    def build(tmp_path):
        path = write_tables(tmp_path / "session.nwb", _trains() if trains == () else trains, tables or {})
        return path, options

    return build


def _light_nwb(description="I activation", without=None, **options):
    """A session whose perturbations are an OptogeneticSeries (one 5 mW pulse in trial 1); `without`:
    a dataset of the file deleted afterwards, as a damaged export leaves it."""

    def build(tmp_path):
        power = np.zeros(int(N_TRIALS * EVERY_S * 100))
        power[int((EVERY_S + 0.3) * 100) : int((EVERY_S + 0.6) * 100)] = 0.005
        path = tmp_path / "light.nwb"
        trials = {key: _trials()[key] for key in ("start_time", "stop_time")}
        write_light_session(path, _trains(), trials, power, 100.0, description)
        if without:
            with h5py.File(path, "a") as handle:
                del handle[without]
        return path, options

    return build


def _npz(options=None, **variables):
    def build(tmp_path):
        path = tmp_path / "recording.npz"
        np.savez(path, **variables)
        return path, options or {}

    return build


def _mat(**variables):
    def build(tmp_path):
        path = tmp_path / "recording.mat"
        scipy.io.savemat(path, variables)
        return path, {}

    return build


def _flat(**changes):
    """Flat per-trial spike times (.npz): 6 trials x 3 neurons, 5 spikes each."""
    rng = np.random.default_rng(0)
    n = 6 * 3 * 5
    variables = {
        "spike_times": rng.uniform(-0.2, 0.3, n),
        "spike_units": np.tile(np.repeat(np.arange(3), 5), 6),
        "spike_trials": np.repeat(np.arange(6), 15),
        "conditions": np.arange(6) % 2,
        "window_ms": np.array([-200.0, 300.0]),
        "bin_ms": 25.0,
    }
    return _npz(**{**variables, **changes})


def _binned(**changes):
    rng = np.random.default_rng(0)
    variables = {
        "spikes": rng.poisson(1.0, (8, 10, 3)),
        "inputs": np.zeros((8, 10, 1)),
        "conditions": np.arange(8) % 2,
        "bin_ms": 25.0,
    }
    return _npz(**{**variables, **changes})


CASES = {
    "empty trials table": (_nwb(tables={"trials": {}}), ["table 'trials'", "empty table"]),
    "empty units table": (_nwb(trains=None, tables={"trials": _trials()}), ["table 'units'", "empty table"]),
    "no spike in any unit": (
        _nwb(trains=[np.zeros(0)] * 3, tables={"trials": _trials()}),
        ["column 'spike_times'", "no spike"],
    ),
    "spike times in ms": (
        _nwb(trains=_trains(scale=1000.0), tables={"trials": _trials()}),
        ["column 'spike_times'", "in ms?"],
    ),
    "half the units in ms": (
        _nwb(trains=_trains()[:2] + _trains(seed=1, scale=1000.0)[2:], tables={"trials": _trials()}),
        ["column 'spike_times'", "unit id 2", "in ms?"],
    ),
    "trial times in ms": (
        _nwb(tables={"trials": {k: v * 1000.0 for k, v in _trials(stim=np.zeros(N_TRIALS)).items()}}),
        ["column 'start_time'", "in ms?"],
    ),
    "event times relative to trial start": (
        _nwb(tables={"trials": _trials(go_time=np.full(N_TRIALS, 0.5))}, align="go_time", window_ms="-100,200"),
        ["column 'go_time'", "relative to each trial's start"],
    ),
    "every trial's start and stop swapped": (
        _nwb(tables={"trials": _trials(start_time=_trials()["stop_time"], stop_time=_trials()["start_time"])}),
        ["table 'trials'", "stop_time not after start_time"],
    ),
    "text in an event column": (
        _nwb(tables={"trials": _trials(go_time=np.array(["0.5 s"] * N_TRIALS))}, align="go_time", window_ms="0,200"),
        ["column 'go_time'", "numbers", "'0.5 s'"],
    ),
    "window longer than every trial": (
        _nwb(tables={"trials": _trials()}, align="go_time", window_ms="0,1500"),
        ["columns 'start_time'/'stop_time'", "past their trial's stop_time"],
    ),
    "trials of different lengths without a window": (
        _nwb(tables={"trials": _trials(stop_time=_trials()["start_time"] + np.linspace(1.0, 1.5, N_TRIALS))}),
        ["columns 'start_time'/'stop_time'", "trials of equal length"],
    ),
    "spike and trial times both in ms": (
        _nwb(
            trains=_trains(scale=1000.0),
            tables={"trials": {k: v * 1000.0 for k, v in _trials(stim=np.zeros(N_TRIALS)).items()}},
        ),
        ["columns 'start_time'/'stop_time'", "at most 600 s", "(times in ms?)"],
    ),
    "trials only in a named table": (
        _nwb(tables={"encoding_table": _trials()}),
        ["table 'trials'", "intervals/encoding_table (12 rows: start_time, stop_time, go_time, stim)"],
    ),
    "a trials table that does not exist": (
        _nwb(tables={"encoding_table": _trials()}, trials_table="recognition_table"),
        ["table 'recognition_table' (--trials-table)", "intervals/encoding_table"],
    ),
    "a filter no trial passes": (
        _nwb(tables={"trials": _trials()}, keep_trials="stim=7"),
        ["column 'stim' (--keep-trials stim=7)", "values: 0, 1, 2"],
    ),
    "a filter on a missing column": (
        _nwb(tables={"trials": _trials()}, keep_trials="success=1"),
        ["column 'success'", "no such column"],
    ),
    "a filter without '='": (
        _nwb(tables={"trials": _trials()}, keep_trials="success"),
        ["setting 'keep_trials' (--keep-trials)", "'success'"],
    ),
    "ragged perturbation columns of different lengths": (
        _nwb(
            tables={"trials": _opto_trials(perturbation_power=[[1.0] if t % 3 == 1 else [] for t in range(N_TRIALS)])}
        ),
        ["table 'trials', column 'perturbation_power'", "2 entries in trial 1", "found 1"],
    ),
    "a perturbation window outside its trial": (
        _nwb(tables={"trials": _opto_trials(**RELATIVE_WINDOWS)}),
        ["column 'perturbation_onset_time'/'perturbation_offset_time'", "overlapping its trial (2..3.5 s", "trial 1"],
    ),
    "a perturbation epoch that ends before it starts": (
        _nwb(
            tables={
                "trials": _trials(),
                "optogenetic_epochs": {
                    "start_time": np.array([2.5, 6.5]),
                    "stop_time": np.array([2.8, 6.2]),
                    "perturbation_target": np.array(["I", "E"]),
                    "perturbation_kind": np.array(["activation", "activation"]),
                    "perturbation_power": np.array([1.0, 1.0]),
                },
            }
        ),
        ["table 'optogenetic_epochs', columns 'start_time'/'stop_time'", "6.5..6.2 in row 1"],
    ),
    "an optogenetic site that names no target": (
        _light_nwb(description="VGAT-ChR2 mouse"),
        ["OptogeneticStimulusSite 'photostim' (of OptogeneticSeries 'stimulus/laser_power')", "'VGAT-ChR2 mouse'"],
    ),
    "an OptogeneticSeries with neither timestamps nor rate": (
        _light_nwb(without="stimulus/presentation/laser_power/starting_time"),
        ["stimulus/presentation/laser_power", "either 'timestamps' or 'rate' must be specified"],
    ),
    "an optogenetic site setting that does not parse": (
        _light_nwb(optogenetic_sites="photostim=PV"),
        ["setting 'optogenetic_sites' (--optogenetic-sites)", "'photostim=PV'"],
    ),
    "an optogenetic site setting for a file without OptogeneticSeries": (
        _nwb(tables={"trials": _opto_trials()}, optogenetic_sites="I/activation"),
        ["setting 'optogenetic_sites'", "perturbations from trials columns perturbation_*"],
    ),
    "flat arrays of inconsistent lengths": (
        _flat(spike_units=np.zeros(10, dtype=int)),
        ["variable 'spike_units'", "one neuron index per spike (90"],
    ),
    "1-based neuron indices": (
        _flat(spike_units=np.tile(np.repeat(np.arange(1, 4), 5), 6)),
        ["variable 'spike_units'", "1-based"],
    ),
    "1-based trial indices": (
        _flat(spike_trials=np.repeat(np.arange(1, 7), 15)),
        ["variable 'spike_trials'", "below 6", "1-based"],
    ),
    "fractional or negative indices": (
        _flat(spike_units=np.tile(np.repeat([0.0, 1.5, 2.0], 5), 6)),
        ["variable 'spike_units'", "whole numbers >= 0", "1.5"],
    ),
    "text spike times": (_flat(spike_times=np.array(["0.1"] * 89 + ["x"])), ["variable 'spike_times'", "numbers"]),
    "text in spike-time cells": (
        _mat(spike_times=np.array([["0.1", "x"], ["0.2", "y"]], dtype=object), conditions=[0, 1], window_ms=[0.0, 100]),
        ["variable 'spike_times'", "numbers"],
    ),
    "relative spike times in ms": (
        _flat(spike_times=np.random.default_rng(0).uniform(-200, 300, 90)),
        ["variable 'spike_times'", "in ms?"],
    ),
    "trial times in ms beside spike times in s": (
        _npz(
            spike_times=np.sort(np.random.default_rng(0).uniform(0, 20, 300)),
            spike_units=np.arange(300) % 3,
            trial_times=np.arange(6) * 3000.0 + 1000.0,
            conditions=np.arange(6) % 2,
            window_ms=np.array([0.0, 500.0]),
        ),
        ["variable 'trial_times'", "in ms?"],
    ),
    "NaN trial times": (
        _npz(
            spike_times=np.sort(np.random.default_rng(0).uniform(0, 20, 300)),
            spike_units=np.arange(300) % 3,
            trial_times=np.array([1.0, np.nan, 7.0, 10.0, 13.0, 16.0]),
            conditions=np.arange(6) % 2,
            window_ms=np.array([0.0, 500.0]),
        ),
        ["variable 'trial_times'", "NaN"],
    ),
    "window as text in a spike-time file": (
        _flat(window_ms=np.array(["-200ms", "300ms"])),
        ["variable 'window_ms'", "start < stop", "-200ms"],
    ),
    "bin times as text in a binned file": (_binned(time_ms=np.array(["0 ms"] * 10)), ["variable 'time_ms'", "numbers"]),
    "bin size as text in a binned file": (_binned(bin_ms=np.array("25ms")), ["variable 'bin_ms'", "'25ms'"]),
    "a negative bin size": (_binned(bin_ms=-25.0), ["variable 'bin_ms'", "a number > 0"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_malformed_input_is_refused_in_one_line_naming_file_and_variable(tmp_path, case, capsys):
    build, expected = CASES[case]
    path, options = build(tmp_path)
    with pytest.raises(DatasetError) as caught:
        load_dataset(path, **options)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    for part in expected:
        assert part in message, (part, message)
    argv = ["summary", str(path)] + [f"--{key.replace('_', '-')}={value}" for key, value in options.items()]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"eirnn summary: error: {message}"


def test_training_on_a_malformed_file_exits_2_and_leaves_no_run_running(tmp_path, tracking_store, capsys):
    from mlflow.tracking import MlflowClient

    for case in ("spike times in ms", "1-based neuron indices", "bin size as text in a binned file"):
        build, expected = CASES[case]
        folder = tmp_path / case.replace(" ", "_")
        folder.mkdir()
        path, options = build(folder)
        flags = [f"--{key.replace('_', '-')}={value}" for key, value in options.items()]
        assert main(["train", "--data", str(path), "--max-epochs", "2", "--threads", "1", *flags]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith(f"eirnn train: error: {path}: ") and expected[0] in err[-1]
    runs = MlflowClient().search_runs([e.experiment_id for e in MlflowClient().search_experiments()])
    assert len(runs) == 3 and {run.info.status for run in runs} == {"FAILED"}


def test_a_usable_session_with_problems_loads_with_what_was_dropped_reported(tmp_path):
    """Repeated, unsorted and NaN spike times; a swapped trial; a NaN event; condition values as
    bytes with empty and 'nan' entries: loaded, each problem counted, no condition named 'nan'."""
    trains = _trains()
    clean = [train.copy() for train in trains]
    trains[0] = np.concatenate([trains[0], trains[0][:10], [np.nan]])  # 10 repeats, unsorted, a NaN
    trains[1] = trains[1][::-1]
    starts, stops = _trials()["start_time"].copy(), _trials()["stop_time"].copy()
    starts[3], stops[3] = stops[3], starts[3]
    go = _trials()["go_time"].copy()
    go[4] = np.nan
    stim = np.array([b"left", b"right", b"", b"left", b"right", b"nan"] * 2)
    columns = _trials(start_time=starts, stop_time=stops, go_time=go, stim=stim)
    path = write_tables(tmp_path / "usable.nwb", trains, {"trials": columns})
    dataset = load_dataset(path, align="go_time", window_ms="-200,800", bin_ms=50, condition="stim")
    dropped = dataset.meta["dropped_trials"]
    assert "1 stop_time not after start_time" in dropped and "1 NaN go_time" in dropped
    missing = {row for row in range(N_TRIALS) if stim[row] in (b"", b"nan")} - {3, 4}
    assert f"{len(missing)} no value in condition column stim" in dropped
    assert dataset.trial_ids.tolist() == sorted(set(range(N_TRIALS)) - {3, 4} - missing)
    assert dataset.condition_labels == ["left", "right"]
    assert dataset.meta["spike_time_problems"] == (
        "1 non-finite spike times removed (unit index 0); 10 repeated spike times removed (unit index 0)"
    )
    clean_path = write_tables(tmp_path / "clean.nwb", clean, {"trials": _trials()})
    reference = load_dataset(clean_path, align="go_time", window_ms="-200,800", bin_ms=50)
    np.testing.assert_array_equal(dataset.counts, reference.counts[dataset.trial_ids])
    summary = dataset.summary()
    assert "| Spike times removed | 1 non-finite" in summary and "| Trials dropped |" in summary
    assert dataset.facts()["dropped_trials"] == dropped


def test_a_mat_file_with_nan_padded_cells_loads_with_the_nan_removed(tmp_path):
    cells = np.empty((4, 2), dtype=object)
    for index in np.ndindex(cells.shape):
        cells[index] = np.array([0.01, 0.12, np.nan])
    path = tmp_path / "padded.mat"
    scipy.io.savemat(path, {"spike_times": cells, "conditions": np.arange(4) % 2, "window_ms": [0.0, 200.0]})
    dataset = load_dataset(path, bin_ms=50)
    assert dataset.counts.sum() == 16
    assert dataset.meta["spike_time_problems"].startswith("8 non-finite spike times removed")
