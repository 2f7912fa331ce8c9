"""Task inputs built from the task for binned files without inputs: condition one-hot, cue-go
on the file's time axis, arrays from .npy/.npz; settings a binned file does not use are refused."""

import numpy as np
import pytest

from eirnn.data import DatasetError, load_dataset

N_TRIALS, N_BINS, N_NEURONS = 6, 20, 3


@pytest.fixture
def no_inputs_file(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "rates.npz"
    np.savez(
        path,
        rates=rng.uniform(0, 20, (N_TRIALS, N_BINS, N_NEURONS)),
        conditions=np.array([10, 20, 30] * 2),
        time_ms=-100 + 10 * np.arange(N_BINS),
        bin_ms=10.0,
    )
    return path


def test_refused_without_inputs_and_built_with_condition_onehot(no_inputs_file):
    with pytest.raises(DatasetError, match=r"variable 'inputs': expected .*\(or --inputs cue-go \| condition-onehot\)"):
        load_dataset(no_inputs_file)
    dataset = load_dataset(no_inputs_file, inputs="condition-onehot")
    assert dataset.input_names == ["condition_10", "condition_20", "condition_30"]
    np.testing.assert_array_equal(dataset.inputs, np.eye(3)[dataset.conditions][:, None, :].repeat(N_BINS, axis=1))
    assert dataset.meta["inputs"] == "condition one-hot over the whole window"


def test_cue_go_on_the_files_time_axis(no_inputs_file):
    dataset = load_dataset(no_inputs_file, inputs="cue-go", cue_event="-50", go_event="0")
    t = dataset.time_ms
    cue_on = (t >= -50) & (t < 0)
    go_on = (t >= 0) & (t < 100)
    for trial, code in enumerate(dataset.conditions):
        expected = np.zeros((N_BINS, 4))
        expected[:, code], expected[:, 3] = cue_on, go_on
        np.testing.assert_array_equal(dataset.inputs[trial], expected)
    assert dataset.meta["inputs"] == "cue one-hot from -50 ms until 0 ms, go pulse of 100 ms"


def test_inputs_from_npy_and_npz_arrays(no_inputs_file, tmp_path):
    shared = np.random.default_rng(1).standard_normal((N_BINS, 2))
    np.save(tmp_path / "u.npy", shared)
    dataset = load_dataset(no_inputs_file, inputs=str(tmp_path / "u.npy"))
    np.testing.assert_allclose(dataset.inputs, np.broadcast_to(shared, (N_TRIALS, N_BINS, 2)).astype(np.float32))
    per_trial = np.random.default_rng(2).standard_normal((N_TRIALS, N_BINS, 2))
    np.savez(tmp_path / "u.npz", inputs=per_trial, input_names=np.array(["target_x", "target_y"]))
    dataset = load_dataset(no_inputs_file, inputs=str(tmp_path / "u.npz"))
    assert dataset.input_names == ["target_x", "target_y"]
    np.testing.assert_allclose(dataset.inputs, per_trial.astype(np.float32))
    np.save(tmp_path / "short.npy", per_trial[:, :5])
    with pytest.raises(DatasetError, match=r"short.npy: variable 'inputs': expected \[6 trials, 20 bins, n_inputs\]"):
        load_dataset(no_inputs_file, inputs=str(tmp_path / "short.npy"))


def test_unknown_inputs_and_nwb_only_settings_are_refused(no_inputs_file):
    with pytest.raises(DatasetError, match=r"setting 'inputs' \(--inputs\): expected condition-onehot or cue-go or"):
        load_dataset(no_inputs_file, inputs="onehot")
    with pytest.raises(DatasetError, match=r"setting --align, --ei: expected only with NWB files .*binned arrays"):
        load_dataset(no_inputs_file, inputs="condition-onehot", align="go_cue_time", ei="cell_type")
