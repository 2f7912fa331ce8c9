"""Malformed recordings a new user brings: each gives one line naming the file and the variable,
through `eirnn train` too, and leaves no MLflow run RUNNING."""

import re

import numpy as np
import pytest
import scipy.io
from mlflow.tracking import MlflowClient

from eirnn.cli import main
from eirnn.config import TrainConfig
from eirnn.data import DatasetError, NeuralDataset, load_dataset
from eirnn.data.trainability import check_trainable
from eirnn.pipeline import prepare

N_TRIALS, N_BINS, N_NEURONS, N_INPUTS = 12, 8, 5, 3


def variables(seed=0) -> dict:
    """A valid .npz recording, trials x time x neurons."""
    rng = np.random.default_rng(seed)
    spikes = rng.poisson(1.0, (N_TRIALS, N_BINS, N_NEURONS))
    spikes[0, 0, :] = 1  # every neuron fires
    return {
        "spikes": spikes,
        "inputs": rng.normal(size=(N_TRIALS, N_BINS, N_INPUTS)).astype(np.float32),
        "conditions": np.repeat([0, 1, 2], N_TRIALS // 3),
        "ei_labels": np.array(["E", "E", "E", "I", "I"]),
        "bin_ms": 10.0,
    }


def write_npz(tmp_path, **changes):
    path = tmp_path / "rec.npz"
    np.savez(path, **{**variables(), **changes})
    return path


def one_line_error(path, variable, pattern, **load_options):
    with pytest.raises(DatasetError) as caught:
        check_trainable(load_dataset(path, **load_options))
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: variable '{variable}'"), message
    assert re.search(pattern, message), message
    return message


# ---------------------------------------------------------------------- E/I labels
@pytest.mark.parametrize(
    "labels, expected",
    [
        (np.array(["E", "E", "I", "E", "I"], dtype=object), [0, 0, 1, 0, 1]),  # a pandas column
        (np.array([b"E", b"I", b"E", b"E", b"i"]), [0, 1, 0, 0, 1]),  # bytes from HDF5
        (np.array([b"exc", b"inh", "E", "I", 0], dtype=object), [0, 1, 0, 1, 0]),
        ([0, 1, 0, 0, 1], [0, 1, 0, 0, 1]),
    ],
)
def test_ei_labels_in_memory_are_parsed(labels, expected):
    values = variables()
    values["counts"], values["ei_labels"] = values.pop("spikes"), labels
    dataset = NeuralDataset(**values)
    assert dataset.ei_labels.tolist() == expected


def test_object_ei_labels_in_npz_are_refused_not_dropped(tmp_path):
    path = write_npz(tmp_path, ei_labels=np.array(["E", "E", "E", "I", "I"], dtype=object))
    one_line_error(path, "ei_labels", r"expected numbers or text.*found object array needing pickle")


def test_matlab_cellstr_ei_labels_are_read(tmp_path):
    values = {
        key: np.transpose(value, (2, 1, 0)) if np.ndim(value) == 3 else value for key, value in variables().items()
    }
    values["ei_labels"] = np.array(["E", "E", "I", "E", "I"], dtype=object)
    path = tmp_path / "rec.mat"
    scipy.io.savemat(path, values, oned_as="column")
    assert load_dataset(path).ei_labels.tolist() == [0, 0, 1, 0, 1]


# ---------------------------------------------------------------------- nothing to fit
def test_all_zero_spikes_are_refused(tmp_path):
    path = write_npz(tmp_path, spikes=np.zeros((N_TRIALS, N_BINS, N_NEURONS), dtype=int))
    one_line_error(path, "spikes", r"expected some spikes.*found all 480 values are 0")


def test_all_nan_data_is_refused(tmp_path):
    path = write_npz(tmp_path, spikes=np.full((N_TRIALS, N_BINS, N_NEURONS), np.nan))
    one_line_error(path, "spikes", r"finite values.*480 NaN")


def test_silent_neurons_are_refused_or_dropped_with_a_count(tmp_path, capsys):
    spikes = variables()["spikes"]
    spikes[:, :, [1, 3]] = 0
    path = write_npz(tmp_path, spikes=spikes)
    one_line_error(path, "spikes", r"--drop-silent-neurons true.*2 of 5 neurons never fire \(neuron_ids 1, 3\)")
    kept = check_trainable(load_dataset(path), drop_silent_neurons=True)
    assert kept.n_neurons == 3 and kept.neuron_ids.tolist() == [0, 2, 4]
    assert kept.ei_labels.tolist() == [0, 0, 1]
    assert kept.facts()["n_silent_dropped"] == 2
    assert "dropped 2 of 5 neurons that never fire" in capsys.readouterr().err


# ---------------------------------------------------------------------- sizes named before layout guessing
@pytest.mark.parametrize(
    "variable, change, pattern",
    [
        ("ei_labels", {"ei_labels": np.array(["E", "E", "I", "I"])}, r"expected 5 entries, one per channel.*found 4"),
        ("conditions", {"conditions": np.zeros(N_TRIALS - 1, int)}, r"expected 12 entries, one per trial.*found 11"),
        ("inputs", {"inputs": np.zeros((N_TRIALS - 2, N_BINS, N_INPUTS))}, r"expected 12 trials \(axis 0.*found 10"),
        ("inputs", {"inputs": np.zeros((N_TRIALS, N_BINS + 1, N_INPUTS))}, r"expected 8 time bins \(axis 1.*found 9"),
        ("time_ms", {"time_ms": np.arange(N_BINS - 1.0)}, r"expected 8 entries, one per time bin.*found 7"),
    ],
)
def test_size_mismatch_names_the_variable(tmp_path, variable, change, pattern):
    message = one_line_error(write_npz(tmp_path, **change), variable, pattern)
    assert "ambiguous" not in message


# ---------------------------------------------------------------------- absurd magnitudes
def test_huge_inputs_are_refused(tmp_path):
    inputs = variables()["inputs"]
    inputs[2, 3, 1] = 3e7
    one_line_error(write_npz(tmp_path, inputs=inputs), "inputs", r"\|values\| <= 1e\+06.*3e\+07.*trial 2, bin 3")


def test_rates_above_5_khz_are_refused(tmp_path):
    spikes = variables()["spikes"]
    spikes[4, 1, 2] = 60  # 60 spikes in 10 ms: 6 kHz
    one_line_error(write_npz(tmp_path, spikes=spikes), "spikes", r"rates <= 5000 Hz.*6e\+03 Hz")
    rates = np.full((N_TRIALS, N_BINS, N_NEURONS), 20.0)
    rates[0, 0, 0] = 2e4
    path = write_npz(tmp_path, rates=rates)
    one_line_error(path, "rates", r"rates <= 5000 Hz.*2e\+04 Hz", keys={"rates": "rates", "spikes": "spikes"})


def test_corrupted_mat_v5_bytes_give_one_line(tmp_path):
    """A few hundred bytes of a MATLAB v5 file overwritten: the damage shows up as absurd values."""
    values = {key: value for key, value in variables().items() if key != "ei_labels"}
    values["inputs"] = np.transpose(values["inputs"].astype(np.float64), (2, 1, 0))
    values["spikes"] = np.transpose(values["spikes"].astype(np.float64), (2, 1, 0))
    path = tmp_path / "rec.mat"
    scipy.io.savemat(path, values)
    data = bytearray(path.read_bytes())
    at = data.index(np.ascontiguousarray(values["inputs"]).tobytes(order="F")[:64])
    data[at + 16 : at + 316] = b"\x7f" * 300
    path.write_bytes(bytes(data))
    one_line_error(path, "inputs", r"\|values\| <= 1e\+06 \(larger means wrong units or a corrupt file\)")


# ---------------------------------------------------------------------- validation trials
def test_no_validation_trials_is_refused(tmp_path):
    path = write_npz(
        tmp_path,
        spikes=np.random.default_rng(1).poisson(3.0, (3, N_BINS, N_NEURONS)) + 1,
        inputs=np.ones((3, N_BINS, N_INPUTS)),
        conditions=np.arange(3),
    )
    with pytest.raises(DatasetError, match=r"variable 'conditions': expected a condition with at least 2 trials"):
        prepare(TrainConfig(data=str(path), threads=1, input_embed_dim=8, attention_heads=2))
    with pytest.raises(DatasetError, match=r"setting 'validate_on_train'.*found spike counts"):
        prepare(TrainConfig(data=str(path), threads=1, validate_on_train=True))


def test_condition_averaged_rates_validate_on_train_only_when_asked(tmp_path):
    path = tmp_path / "averaged.npz"
    values = variables()
    del values["spikes"]
    values.update(
        rates=np.random.default_rng(1).uniform(1, 20, (3, N_BINS, N_NEURONS)),
        inputs=np.ones((3, N_BINS, N_INPUTS)),
        conditions=np.arange(3),
    )
    np.savez(path, **values)
    config = TrainConfig(data=str(path), threads=1, input_embed_dim=8, attention_heads=2)
    with pytest.raises(DatasetError, match=r"'conditions'.*--validate-on-train true.*one pseudo-trial per condition"):
        prepare(config)
    prepared = prepare(config.replace(validate_on_train=True))
    assert prepared.train is prepared.val and not prepared.held_out
    trials = variables()
    del trials["spikes"]
    np.savez(path, **trials, rates=np.ones((N_TRIALS, N_BINS, N_NEURONS)))
    with pytest.raises(DatasetError, match=r"validate_on_train.*up to 4 trials per condition"):
        prepare(config.replace(validate_on_train=True))


# ---------------------------------------------------------------------- through `eirnn train`
@pytest.mark.parametrize(
    "change, variable",
    [
        ({"ei_labels": np.array(["E", "E", "E", "I", "I"], dtype=object)}, "ei_labels"),
        ({"spikes": np.zeros((N_TRIALS, N_BINS, N_NEURONS), dtype=int)}, "spikes"),
    ],
)
def test_eirnn_train_gives_one_line_and_leaves_no_run_running(tracking_store, capsys, change, variable):
    path = write_npz(tracking_store, **change)
    assert main(["train", "--data", str(path), "--max-epochs", "2", "--threads", "1"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]  # after MLflow's own log lines
    assert error.startswith(f"eirnn train: error: {path}: variable '{variable}'"), error
    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("eirnn").experiment_id])
    assert [run.info.status for run in runs] == ["FAILED"]
