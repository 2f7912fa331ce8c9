"""Spike times in .mat (cell arrays written by scipy) and .npz (flat arrays) load into the
counts that binning the same spike times by hand gives; task inputs built from the task."""

import numpy as np
import pytest
import scipy.io

from eirnn.data import DatasetError, load_dataset
from eirnn.data.task_inputs import GO_PULSE_MS

N_TRIALS, N_NEURONS = 10, 4
WINDOW_MS = (-200.0, 300.0)
EDGE_S = 1e-9  # the binning rule: [lo, hi) with edges up to float rounding in the later bin


@pytest.fixture(scope="module")
def recording():
    """Per-trial spike times relative to time zero, the same on a session clock, conditions."""
    rng = np.random.default_rng(1)
    relative = np.empty((N_TRIALS, N_NEURONS), dtype=object)
    for index in np.ndindex(relative.shape):
        relative[index] = np.sort(rng.uniform(-0.4, 0.5, rng.poisson(12)))
    trial_times = 2.0 + 1.5 * np.arange(N_TRIALS)
    per_neuron = np.empty(N_NEURONS, dtype=object)
    for neuron in range(N_NEURONS):
        per_neuron[neuron] = np.sort(np.concatenate([relative[t, neuron] + trial_times[t] for t in range(N_TRIALS)]))
    conditions = np.array(["left", "right"])[np.arange(N_TRIALS) % 2]
    return relative, per_neuron, trial_times, conditions


def _by_hand(relative, bin_ms):
    n_bins = round((WINDOW_MS[1] - WINDOW_MS[0]) / bin_ms)
    counts = np.zeros((N_TRIALS, n_bins, N_NEURONS), dtype=np.int64)
    for (trial, neuron), times in np.ndenumerate(relative):
        for k in range(n_bins):
            lo = (WINDOW_MS[0] + k * bin_ms) / 1000 - EDGE_S
            counts[trial, k, neuron] = np.count_nonzero((times >= lo) & (times < lo + bin_ms / 1000))
    return counts


@pytest.mark.parametrize("bin_ms", [10.0, 25.0])
def test_mat_cell_arrays_per_trial_per_neuron_and_transposed(recording, tmp_path, bin_ms):
    relative, per_neuron, trial_times, conditions = recording
    expected = _by_hand(relative, bin_ms)
    common = {"conditions": conditions.astype(object), "window_ms": np.array(WINDOW_MS), "bin_ms": bin_ms}
    files = {
        "per_trial": {"spike_times": relative},
        "neurons_x_trials": {"spike_times": relative.T.copy()},
        "per_neuron": {"spike_times": per_neuron.reshape(-1, 1), "trial_times": trial_times},
    }
    for name, variables in files.items():
        path = tmp_path / f"{name}.mat"
        scipy.io.savemat(path, {**variables, **common})
        dataset = load_dataset(path)
        np.testing.assert_array_equal(dataset.counts, expected, err_msg=name)
        assert dataset.condition_labels == ["left", "right"] and dataset.bin_ms == bin_ms
        assert dataset.input_names == ["condition_left", "condition_right"]  # the default without inputs
        assert dataset.meta["window_ms"] == "-200,300"


def test_npz_flat_spike_times_per_trial_and_per_neuron(recording, tmp_path):
    relative, per_neuron, trial_times, conditions = recording
    expected = _by_hand(relative, 20.0)
    trials, neurons = np.nonzero(np.vectorize(len)(relative))
    sizes = np.vectorize(len)(relative)[trials, neurons]
    flat = {
        "spike_times": np.concatenate(list(relative[trials, neurons])),
        "spike_units": np.repeat(neurons, sizes),
        "spike_trials": np.repeat(trials, sizes),
    }
    np.savez(tmp_path / "per_trial.npz", **flat, conditions=conditions, window_ms=np.array(WINDOW_MS))
    np.testing.assert_array_equal(load_dataset(tmp_path / "per_trial.npz", bin_ms=20).counts, expected)
    session = {
        "spike_times": np.concatenate(list(per_neuron)),
        "spike_units": np.repeat(np.arange(N_NEURONS), [len(times) for times in per_neuron]),
    }
    np.savez(tmp_path / "per_neuron.npz", **session, conditions=conditions, go=trial_times)
    dataset = load_dataset(tmp_path / "per_neuron.npz", bin_ms=20, window_ms="-200,300", align="go")
    np.testing.assert_array_equal(dataset.counts, expected)
    assert dataset.meta["align"] == "go"


def test_cue_go_inputs_from_times_on_the_time_axis(recording, tmp_path):
    relative, _, _, conditions = recording
    path = tmp_path / "cells.mat"
    scipy.io.savemat(path, {"spike_times": relative, "conditions": conditions.astype(object)})
    dataset = load_dataset(path, bin_ms=10, window_ms="-200,300", inputs="cue-go", cue_event="-150", go_event="50")
    t = dataset.time_ms
    for trial, code in enumerate(dataset.conditions):
        np.testing.assert_array_equal(dataset.inputs[trial, :, code], (t >= -150) & (t < 50))
        np.testing.assert_array_equal(dataset.inputs[trial, :, -1], (t >= 50) & (t < 50 + GO_PULSE_MS))
    with pytest.raises(DatasetError, match=r"setting 'go_event' \(--go-event\): expected a time in ms .*'go_cue_time'"):
        load_dataset(path, bin_ms=10, window_ms="-200,300", inputs="cue-go", go_event="go_cue_time")


def test_spike_time_errors_name_file_and_variable(recording, tmp_path):
    relative, _, _, conditions = recording
    path = tmp_path / "nowindow.mat"
    scipy.io.savemat(path, {"spike_times": relative, "conditions": conditions.astype(object)})
    with pytest.raises(DatasetError, match=rf"^{path}: variable 'window_ms': expected the window"):
        load_dataset(path)
    with pytest.raises(DatasetError, match=rf"^{path}: setting 'window_ms' .*whole number of 30 ms bins"):
        load_dataset(path, window_ms="-200,300", bin_ms=30)
    with pytest.raises(DatasetError, match=r"setting --condition: expected only with NWB files"):
        load_dataset(path, window_ms="-200,300", condition="target")
    np.savez(tmp_path / "objects.npz", spike_times=relative, conditions=conditions)
    with pytest.raises(
        DatasetError, match=r"variable 'spike_times': expected numbers in the flat form .*; found object"
    ):
        load_dataset(tmp_path / "objects.npz", window_ms="-200,300")
