"""Loaders: .npz, MATLAB v5 and v7.3 files written here with numpy, scipy and h5py."""

import hashlib
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

from eirnn.data import DatasetError, NeuralDataset, load_dataset, parse_keys, parse_layout, write_dataset
from eirnn.data.examples import load_m1_reach

CANONICAL = ("trials", "time", "neurons")
LAYOUTS = [CANONICAL, ("neurons", "time", "trials"), ("time", "neurons", "trials")]
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
M1_FILE = SHARED / "data" / "hatsopoulos2007_m1" / "m1_reach_condition_averaged.npz"


# ---------------------------------------------------------------------- file writers
def write_npz(path, variables):
    np.savez(path, **{name: np.asarray(value) for name, value in variables.items()})


def write_mat5(path, variables):
    # a Python list of strings becomes a MATLAB cell array of char rows
    converted = {
        name: np.array(value, dtype=object) if isinstance(value, list) else value for name, value in variables.items()
    }
    scipy.io.savemat(path, converted, oned_as="column")


MATLAB_CLASSES = {
    "f8": "double",
    "f4": "single",
    "u1": "uint8",
    "u2": "uint16",
    "i8": "int64",
    "i4": "int32",
    "b1": "logical",
}


def _h5_put(handle, group, name, value):
    """Store one value as MATLAB v7.3 does: transposed, text as uint16, cells as references."""
    if isinstance(value, str):
        data = np.array([[ord(char) for char in value]], dtype=np.uint16)
        dataset = group.create_dataset(name, data=data.T)
        dataset.attrs["MATLAB_class"] = np.bytes_("char")
        dataset.attrs["MATLAB_int_decode"] = np.int32(2)
        return dataset
    if isinstance(value, list):
        refs = handle.require_group("#refs#")
        references = np.empty((len(value), 1), dtype=h5py.ref_dtype)  # MATLAB column cell {n x 1}
        for index, element in enumerate(value):
            references[index, 0] = _h5_put(handle, refs, f"{name}_{index}", element).ref
        dataset = group.create_dataset(name, data=references.T)
        dataset.attrs["MATLAB_class"] = np.bytes_("cell")
        return dataset
    array = np.asarray(value)
    if array.ndim < 2:
        array = array.reshape(-1, 1)  # MATLAB has no 1-d arrays: vectors are columns, scalars 1x1
    matlab_class = MATLAB_CLASSES[array.dtype.str[1:]]
    dataset = group.create_dataset(name, data=(array.astype(np.uint8) if array.dtype == bool else array).T)
    dataset.attrs["MATLAB_class"] = np.bytes_(matlab_class)
    return dataset


def write_mat73(path, variables):
    with h5py.File(path, "w", userblock_size=512) as handle:
        for name, value in variables.items():
            _h5_put(handle, handle, name, value)
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    with open(path, "r+b") as handle:
        handle.write(header.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM")


WRITERS = {"npz": (write_npz, ".npz"), "mat5": (write_mat5, ".mat"), "mat73": (write_mat73, ".mat")}


def write_file(tmp_path, file_format, variables, name="rec"):
    writer, suffix = WRITERS[file_format]
    path = tmp_path / f"{name}{suffix}"
    writer(path, variables)
    return path


# ---------------------------------------------------------------------- datasets and their file variables
def make_dataset(seed=0, n_trials=9, n_bins=7, n_neurons=5, n_inputs=3, string_conditions=True):
    rng = np.random.default_rng(seed)
    conditions = rng.permutation(np.arange(n_trials) % 3)
    return NeuralDataset(
        counts=rng.poisson(1.5, (n_trials, n_bins, n_neurons)),
        inputs=rng.normal(size=(n_trials, n_bins, n_inputs)).astype(np.float32),
        ei_labels=rng.permutation(np.arange(n_neurons) % 3 == 0),
        conditions=np.array(["left", "right", "up"])[conditions] if string_conditions else conditions * 45,
        bin_ms=20.0,
        behavior=rng.normal(size=(n_trials, n_bins, 2)),
        behavior_names=["hand_vx", "hand_vy"],
        time_ms=np.arange(n_bins) * 20.0 - 40.0,
    )


LABEL_STYLES = {
    "npz": ("ei_labels", lambda codes: np.array(["E", "I"])[codes]),
    "mat5": ("cell_type", lambda codes: [["classic", "Interneuron"][code] for code in codes]),
    "mat73": ("is_interneuron", lambda codes: codes.astype(bool)),
}


def file_variables(dataset, file_format, order=CANONICAL):
    """The dataset as a file's variables, 3-d arrays in `order`; text as lists for MATLAB cells."""
    to_file = [CANONICAL.index(axis) for axis in order]
    as_text = list if file_format != "npz" else np.array
    conditions = [dataset.condition_labels[code] for code in dataset.conditions]
    label_name, label_values = LABEL_STYLES[file_format]
    return {
        "spikes": np.transpose(dataset.counts, to_file).astype(np.uint8 if file_format != "npz" else np.int64),
        "inputs": np.transpose(dataset.inputs, to_file),
        label_name: label_values(dataset.ei_labels),
        "conditions": as_text(conditions) if isinstance(conditions[0], str) else np.array(conditions, dtype=float),
        "bin_ms": 20.0,
        "behavior": np.transpose(dataset.behavior, to_file),
        "behavior_names": as_text(dataset.behavior_names),
        "time_ms": dataset.time_ms,
        "subject": "monkey C",
    }


# ---------------------------------------------------------------------- round trips
@pytest.mark.parametrize("file_format", ["npz", "mat5", "mat73"])
@pytest.mark.parametrize("order", LAYOUTS, ids=lambda order: "-".join(order))
def test_round_trip_with_layout(tmp_path, file_format, order):
    dataset = make_dataset(string_conditions=file_format != "mat5")
    path = write_file(tmp_path, file_format, file_variables(dataset, file_format, order))
    loaded = load_dataset(path, layout=",".join(order))
    assert loaded == dataset
    assert loaded.condition_labels == dataset.condition_labels
    assert loaded.behavior_names == ["hand_vx", "hand_vy"]
    assert loaded.meta["subject"] == "monkey C"
    assert loaded.meta["source_file"] == str(path)
    assert loaded.meta["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("file_format", ["npz", "mat5", "mat73"])
def test_layout_is_inferred_when_sizes_make_it_unambiguous(tmp_path, file_format):
    dataset = make_dataset()
    path = write_file(tmp_path, file_format, file_variables(dataset, file_format, ("neurons", "time", "trials")))
    loaded = load_dataset(path)
    assert loaded == dataset
    assert loaded.meta["layout"] == "neurons,time,trials"


def test_v73_char_matrix_and_v5_char_rows_are_read_as_text(tmp_path):
    dataset = make_dataset()
    variables = file_variables(dataset, "mat73")
    variables["subject"] = "Monkey-C"
    path = tmp_path / "rec.mat"
    write_mat73(path, variables)
    with h5py.File(path, "r+") as handle:  # conditions as a char column matrix ['left ';'right';'up   ']
        del handle["conditions"]
        rows = [label.ljust(5) for label in np.array(dataset.condition_labels)[dataset.conditions]]
        chars = np.array([[ord(char) for char in row] for row in rows], dtype=np.uint16)
        handle.create_dataset("conditions", data=chars.T).attrs["MATLAB_class"] = np.bytes_("char")
    loaded = load_dataset(path)
    assert loaded.condition_labels == ["left", "right", "up"] and loaded == dataset
    assert loaded.meta["subject"] == "Monkey-C"


def test_matlab_drops_trailing_single_trial_axis(tmp_path):
    dataset = make_dataset(n_trials=1)
    variables = file_variables(dataset, "mat5", ("neurons", "time", "trials"))
    for name in ("spikes", "inputs", "behavior"):
        variables[name] = variables[name][:, :, 0]
    path = write_file(tmp_path, "mat5", variables)
    assert load_dataset(path, layout="neurons,time,trials") == dataset


def test_format_is_chosen_by_content_not_extension(tmp_path):
    dataset = make_dataset()
    npz = write_file(tmp_path, "npz", file_variables(dataset, "npz"))
    disguised = npz.rename(tmp_path / "really_npz.mat")
    assert load_dataset(disguised).meta["format"] == "npz"
    mat = write_file(tmp_path, "mat73", file_variables(dataset, "mat73"))
    renamed = mat.rename(tmp_path / "export.data")
    assert load_dataset(renamed) == dataset


def test_plain_hdf5_is_read_in_numpy_order(tmp_path):
    dataset = make_dataset()
    path = tmp_path / "rec.h5"
    with h5py.File(path, "w") as handle:
        for name, value in file_variables(dataset, "npz").items():
            handle[name] = np.char.encode(value) if np.asarray(value).dtype.kind == "U" else value
    assert load_dataset(path, layout="trials,time,neurons") == dataset


def test_aliases_keys_and_bin_in_seconds(tmp_path):
    dataset = make_dataset()
    variables = file_variables(dataset, "npz")
    renamed = {
        "counts": variables.pop("spikes"),
        "u": variables.pop("inputs"),
        "trial_condition": variables.pop("conditions"),
        "bin_s": 0.020,
        **{name: value for name, value in variables.items() if name != "bin_ms"},
    }
    path = write_file(tmp_path, "npz", renamed)
    by_dict = load_dataset(path, keys={"inputs": "u"})
    by_text = load_dataset(path, keys="inputs=u")
    assert by_dict == dataset == by_text
    assert by_dict.meta["source_variables"]["inputs"] == "u"


def test_keys_rename_variables_in_validation_messages(tmp_path):
    dataset = make_dataset()
    variables = file_variables(dataset, "npz")
    counts = variables.pop("spikes").astype(float)
    counts[1, 2, 3] = np.nan
    path = write_file(tmp_path, "npz", {**variables, "psth_counts": counts})
    with pytest.raises(DatasetError, match=r"variable 'psth_counts' \(counts\).*1 NaN.*trial 1, bin 2, neuron 3"):
        load_dataset(path, keys={"spikes": "psth_counts"})


def test_bin_size_from_argument(tmp_path):
    dataset = make_dataset()
    variables = {name: value for name, value in file_variables(dataset, "npz").items() if name != "bin_ms"}
    path = write_file(tmp_path, "npz", variables)
    with pytest.raises(DatasetError, match=r"variable 'bin_ms'.*bin_ms="):
        load_dataset(path)
    assert load_dataset(path, bin_ms=20) == dataset
    with_bin = write_file(tmp_path, "npz", {**variables, "bin_ms": 20.0}, name="with_bin")
    with pytest.raises(DatasetError, match=r"variable 'bin_ms'.*bin_ms=25 as passed.*found 20 ms"):
        load_dataset(with_bin, bin_ms=25)


# ---------------------------------------------------------------------- write_dataset
@pytest.mark.parametrize("suffix, order", [(".mat", "neurons,time,trials"), (".npz", "trials,time,neurons")])
def test_write_dataset_round_trip(tmp_path, suffix, order):
    dataset = make_dataset(string_conditions=suffix == ".npz")
    dataset.meta.update(subject="monkey C", session="2024-01-01", area="M1")
    path = write_dataset(dataset, tmp_path / f"out{suffix}")
    loaded = load_dataset(path, layout=order)
    assert loaded == dataset
    assert load_dataset(path) == dataset
    assert {key: loaded.meta[key] for key in ("subject", "session", "area")} == {
        "subject": "monkey C",
        "session": "2024-01-01",
        "area": "M1",
    }


def test_write_dataset_uses_matlab_axis_order_in_mat_files(tmp_path):
    dataset = make_dataset()
    path = write_dataset(dataset, tmp_path / "out.mat")
    stored = scipy.io.loadmat(path)
    assert stored["spikes"].shape == (5, 7, 9)
    assert stored["inputs"].shape == (3, 7, 9)
    np.testing.assert_array_equal(stored["spikes"][:, :, 4].T, dataset.counts[4])
    with pytest.raises(DatasetError, match=r"\.mat or \.npz"):
        write_dataset(dataset, tmp_path / "out.csv")


def test_rates_only_round_trip(tmp_path):
    counted = make_dataset()
    rated = NeuralDataset(
        rates=counted.rates_hz * 0.7,
        inputs=counted.inputs,
        conditions=counted.conditions,
        condition_labels=counted.condition_labels,
        bin_ms=counted.bin_ms,
    )
    loaded = load_dataset(write_dataset(rated, tmp_path / "rates.mat"))
    assert loaded == rated and not loaded.has_counts and loaded.ei_labels is None


# ---------------------------------------------------------------------- refusals
def test_ambiguous_layout_lists_variables_and_the_flag(tmp_path):
    dataset = make_dataset(n_trials=5, n_neurons=5, n_inputs=5)
    variables = {
        name: value
        for name, value in file_variables(dataset, "npz").items()
        if name not in ("ei_labels", "behavior", "behavior_names")
    }
    path = write_file(tmp_path, "npz", variables)
    with pytest.raises(DatasetError) as caught:
        load_dataset(path)
    message = str(caught.value)
    assert "'spikes'" in message and "2 axis orders fit" in message
    for listed in ("spikes (5x7x5) int64", "inputs (5x7x5) float32", "conditions (5) <U5", "time_ms (7) float64"):
        assert listed in message
    assert re.search(r"--data-layout \w+,\w+,\w+ \(layout='\w+,\w+,\w+'\)", message)
    assert load_dataset(path, layout="trials,time,neurons").n_neurons == 5


def test_disagreeing_sizes_refuse_to_guess(tmp_path):
    dataset = make_dataset()
    variables = file_variables(dataset, "npz")
    variables["ei_labels"] = variables["ei_labels"][:4]
    path = write_file(tmp_path, "npz", variables)
    with pytest.raises(DatasetError, match=r"no axis order makes all variables agree.*ei_labels \(4\)"):
        load_dataset(path)
    with pytest.raises(DatasetError, match=r"'ei_labels'.*expected 5 labels.*found 4"):
        load_dataset(path, layout="trials,time,neurons")


@pytest.mark.parametrize("missing", ["spikes", "inputs", "conditions"])
def test_missing_variable_lists_the_variables_present(tmp_path, missing):
    variables = file_variables(make_dataset(), "mat5")
    del variables[missing]
    path = write_file(tmp_path, "mat5", variables)
    with pytest.raises(DatasetError) as caught:
        load_dataset(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: variable '{missing}'")
    assert "behavior (9x7x2) float64" in message and "time_ms (7x1) float64" in message


def test_mapped_variable_that_is_absent(tmp_path):
    path = write_file(tmp_path, "npz", file_variables(make_dataset(), "npz"))
    with pytest.raises(DatasetError, match=r"variable 'psth'.*no such variable; variables present: spikes"):
        load_dataset(path, keys={"spikes": "psth"})


@pytest.mark.parametrize("file_format", ["npz", "mat5", "mat73"])
def test_truncated_files_raise_dataset_error(tmp_path, file_format):
    path = write_file(tmp_path, file_format, file_variables(make_dataset(n_trials=40), file_format))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=re.escape(str(path))):
        load_dataset(path)


@pytest.mark.parametrize(
    "content, pattern",
    [(b"", "empty file"), (b"\x00garbage" * 50, "corrupt or truncated"), (b"hello, world", "first bytes")],
)
def test_unreadable_content(tmp_path, content, pattern):
    path = tmp_path / ("bad.mat" if pattern != "first bytes" else "bad.txt")
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=pattern):
        load_dataset(path)


def test_missing_file_and_object_arrays(tmp_path):
    with pytest.raises(DatasetError, match="no such file"):
        load_dataset(tmp_path / "absent.npz")
    variables = file_variables(make_dataset(), "npz")
    variables["conditions"] = np.array(list(variables["conditions"]), dtype=object)
    path = tmp_path / "pickled.npz"
    np.savez(path, **variables)
    with pytest.raises(DatasetError, match=r"'conditions'.*conditions \(object array needing pickle, not read\)"):
        load_dataset(path)


def test_parse_keys_and_layout():
    assert parse_keys("spikes=psth_counts, inputs=u") == {"spikes": "psth_counts", "inputs": "u"}
    assert parse_keys("counts=c") == {"spikes": "c"}
    with pytest.raises(DatasetError, match=r"keys.*found 'spiky'"):
        parse_keys("spiky=x")
    with pytest.raises(DatasetError, match=r"keys.*SCHEMA_NAME=FILE_NAME"):
        parse_keys("spikes")
    assert parse_layout("Neurons, bins, trial") == ("neurons", "time", "trials")
    with pytest.raises(DatasetError, match=r"layout.*'neurons,time'"):
        parse_layout("neurons,time")


# ---------------------------------------------------------------------- real example data
needs_m1 = pytest.mark.skipif(not M1_FILE.is_file(), reason=f"shared M1 example data not found at {M1_FILE}")


@needs_m1
def test_m1_reach_example():
    dataset = load_m1_reach(M1_FILE)
    summary = dataset.summary()
    rows = ("| Neurons | 141 (unlabeled", "| Trials | 8 (8 conditions) |", "| Time bins | 121 ", "| Bin size | 10 ms |")
    for row in rows:
        assert row in summary
    assert not dataset.has_counts and dataset.ei_labels is None
    assert dataset.n_inputs == 9 and dataset.behavior_names == ["hand_vx", "hand_vy"]
    before_cue_off = dataset.time_ms < -100
    for code in range(8):
        np.testing.assert_array_equal(dataset.inputs[code, :, code], before_cue_off)
        assert dataset.inputs[code, :, :8].sum() == before_cue_off.sum()
    go_times = dataset.time_ms[dataset.inputs[0, :, 8] == 1]
    assert go_times.min() == -300 and go_times.max() == -210
    assert dataset.facts()["data_sha256"] == hashlib.sha256(M1_FILE.read_bytes()).hexdigest()


@needs_m1
def test_m1_default_path_from_environment_or_working_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("EIRNN_SHARED_DIR", str(SHARED))
    monkeypatch.chdir(tmp_path)
    assert load_m1_reach().n_neurons == 141
    monkeypatch.delenv("EIRNN_SHARED_DIR")
    monkeypatch.chdir(SHARED.parent)
    assert load_m1_reach().n_trials == 8


@needs_m1
def test_generic_loader_refuses_the_m1_file_without_inputs():
    with pytest.raises(DatasetError) as caught:
        load_dataset(M1_FILE)
    message = str(caught.value)
    assert "variable 'inputs'" in message and "rates (8x121x141) float64" in message
    assert "hand_velocity (8x121x2)" in message
