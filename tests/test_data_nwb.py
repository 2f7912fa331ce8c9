"""NWB files written with pynwb at test time load into the counts, conditions, E/I labels,
behaviour and inputs that a plain numpy computation on the same spike times gives."""

import re

import numpy as np
import pytest
from nwb_sessions import DIRECTIONS, EDGE_S, bin_by_hand, write_session

from eirnn.cli import main
from eirnn.data import DatasetError, load_dataset
from eirnn.data.task_inputs import GO_PULSE_MS


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    return write_session(tmp_path_factory.mktemp("nwb") / "session.nwb")


def _kept(dataset, n_trials=40):
    return np.isin(np.arange(n_trials), dataset.trial_ids)


@pytest.mark.parametrize("align", ["go_cue_time", "move_onset_time"])
@pytest.mark.parametrize("bin_ms", [5.0, 20.0])
def test_counts_equal_binning_by_hand(session, align, bin_ms):
    dataset = load_dataset(session.path, align=align, window_ms="-300,300", bin_ms=bin_ms)
    zero = session.columns[align]
    # trial 0's window starts before the recording; trial 5 has no movement onset; windows that
    # end after their trial's own stop_time (in the next trial) are dropped
    past_stop = np.flatnonzero(zero + 0.3 > session.columns["stop_time"])
    expected_dropped = sorted({0, *past_stop, *([5] if align == "move_onset_time" else [])})
    assert sorted(set(range(40)) - set(dataset.trial_ids.tolist())) == expected_dropped
    np.testing.assert_array_equal(dataset.counts, bin_by_hand(session, zero[_kept(dataset)], (-300, 300), bin_ms))
    assert dataset.n_bins == 600 / bin_ms and dataset.bin_ms == bin_ms
    np.testing.assert_allclose(dataset.time_ms, -300 + (np.arange(dataset.n_bins) + 0.5) * bin_ms)
    assert dataset.meta["n_trials_dropped"] == len(expected_dropped)
    assert "1 window outside the recording" in dataset.meta["dropped_trials"]
    assert ("1 NaN move_onset_time" in dataset.meta["dropped_trials"]) == (align == "move_onset_time")
    n_past = len(set(past_stop) - {5})
    assert (f"{n_past} window ends after stop_time" in dataset.meta["dropped_trials"]) == bool(n_past)


def test_whole_trials_from_start_time_without_alignment(session):
    dataset = load_dataset(session.path, bin_ms=25)
    assert dataset.n_trials == 40 and dataset.n_bins == 40
    np.testing.assert_array_equal(dataset.counts, bin_by_hand(session, session.columns["start_time"], (0, 1000), 25))
    assert dataset.meta["align"] == "start_time" and dataset.meta["n_trials_dropped"] == 0


def test_conditions_from_one_column_and_from_combinations(session):
    by_target = load_dataset(session.path, bin_ms=50, condition="target_pos")
    labels = sorted({str(tuple(int(v) for v in row)) for row in DIRECTIONS})
    assert by_target.condition_labels == labels
    expected = [str(tuple(int(v) for v in DIRECTIONS[trial % 4])) for trial in range(40)]
    assert [by_target.condition_labels[code] for code in by_target.conditions] == expected

    combined = load_dataset(session.path, bin_ms=50, condition="trial_type, trial_version")
    pairs = [f"{a}, {b}" for a, b in zip(session.columns["trial_type"], session.columns["trial_version"])]
    assert combined.condition_labels == sorted(set(pairs))
    assert [combined.condition_labels[code] for code in combined.conditions] == pairs
    np.testing.assert_array_equal(
        combined.trials_per_condition, [pairs.count(label) for label in combined.condition_labels]
    )
    assert load_dataset(session.path, bin_ms=50).condition_labels == ["all"]


def test_ei_labels_default_mapping_explicit_mapping_and_auto_column(session):
    expected = (session.cell_type == "FS").astype(np.int8)
    by_default = load_dataset(session.path, bin_ms=50, ei="cell_type")
    np.testing.assert_array_equal(by_default.ei_labels, expected)
    assert (by_default.n_e, by_default.n_i) == (8, 4)
    explicit = load_dataset(session.path, bin_ms=50, ei="waveform:E=wide;I=narrow")
    np.testing.assert_array_equal(explicit.ei_labels, expected)
    swapped = load_dataset(session.path, bin_ms=50, ei="cell_type:E=FS;I=RS")
    np.testing.assert_array_equal(swapped.ei_labels, 1 - expected)
    found = load_dataset(session.path, bin_ms=50)  # a 'cell_type' column is used when --ei names none
    np.testing.assert_array_equal(found.ei_labels, expected)
    assert "cell_type" in found.meta["ei_source"]


def test_behavior_is_the_mean_of_the_samples_in_each_bin(session):
    dataset = load_dataset(session.path, align="go_cue_time", window_ms="-100,400", bin_ms=20, behavior="hand_vel")
    assert dataset.behavior_names == ["hand_vel_x", "hand_vel_y"]
    for row, trial in enumerate(np.flatnonzero(_kept(dataset))):
        for k in range(dataset.n_bins):
            lo = session.columns["go_cue_time"][trial] + (-100 + 20 * k) / 1000
            in_bin = (session.hand_times >= lo - EDGE_S) & (session.hand_times < lo + 0.020 - EDGE_S)
            np.testing.assert_allclose(dataset.behavior[row, k], session.hand_vel[in_bin].mean(axis=0), atol=1e-9)
    by_path = load_dataset(
        session.path, align="go_cue_time", window_ms="-100,400", bin_ms=20, behavior="processing/behavior/hand_vel"
    )
    np.testing.assert_array_equal(by_path.behavior, dataset.behavior)


def test_cue_go_inputs_follow_each_trials_events(session):
    dataset = load_dataset(
        session.path,
        align="move_onset_time",
        window_ms="-500,300",
        bin_ms=10,
        condition="target_pos",
        inputs="cue-go",
        cue_event="target_on_time",
        go_event="go_cue_time",
    )
    assert dataset.input_names[-1] == "go" and dataset.n_inputs == 5
    kept = np.flatnonzero(_kept(dataset))
    for row, trial in enumerate(kept):
        move = session.columns["move_onset_time"][trial]
        cue_on = (session.columns["target_on_time"][trial] - move) * 1000
        go_on = (session.columns["go_cue_time"][trial] - move) * 1000
        t = dataset.time_ms
        code = dataset.conditions[row]
        np.testing.assert_array_equal(dataset.inputs[row, :, code], (t >= cue_on) & (t < go_on))
        np.testing.assert_array_equal(dataset.inputs[row, :, -1], (t >= go_on) & (t < go_on + GO_PULSE_MS))
        assert dataset.inputs[row, :, :4].sum() == dataset.inputs[row, :, code].sum()


def test_units_without_spikes_are_reported(tmp_path):
    session = write_session(tmp_path / "silent.nwb", n_units=3, n_trials=6, behavior=False, silent_units=1)
    dataset = load_dataset(session.path, bin_ms=50)
    assert dataset.meta["silent_units"] == "3"
    assert "| Units without spikes | 3 |" in dataset.summary()


@pytest.mark.parametrize(
    "writer, options, pattern",
    [
        (dict(units=False), {}, r"table 'units': expected a units table .*; found none in this file"),
        (
            dict(trials=False),
            {},
            r"table 'trials': expected one table of trials .*--trials-table NAME\); found none in this file; "
            r"interval tables in this file: none$",
        ),
        (
            {},
            dict(align="movement_onset", window_ms="-100,100"),
            r"table 'trials', column 'movement_onset': expected an alignment column .*; found no such column; "
            r"columns: .*move_onset_time",
        ),
        (
            {},
            dict(window_ms="0,1500"),
            r"'start_time'/'stop_time': expected trials at least as long as the window"
            r" \(1500 ms from start_time; windows may not run past their trial's stop_time\); found trials of "
            r"1000..1000 ms",
        ),
        (
            {},
            dict(align="go_cue_time"),
            r"setting 'window_ms' \(--window-ms\): expected START,STOP in ms around "
            r"'go_cue_time'.*; found none",
        ),
        (
            {},
            dict(ei="cell_type:E=RS"),
            r"table 'units', column 'cell_type': expected values mapped to E or I by "
            r"E/I as given: E=RS; found 'FS' for 1 unit\(s\) \(first: unit id 2\)",
        ),
        (
            {},
            dict(condition="target"),
            r"table 'trials', column 'target': expected a condition column .*; found no "
            r"such column",
        ),
        (
            {},
            dict(behavior="eye_pos"),
            r"TimeSeries 'eye_pos' \(--behavior\): expected exactly one TimeSeries of "
            r"that name or path; found none; TimeSeries in the file: processing/behavior/hand_vel",
        ),
    ],
)
def test_errors_name_file_table_column_expected_and_found(tmp_path, writer, options, pattern):
    session = write_session(tmp_path / "broken.nwb", n_units=3, n_trials=4, **writer)
    with pytest.raises(DatasetError) as caught:
        load_dataset(session.path, bin_ms=50, **options)
    message = str(caught.value)
    assert message.startswith(f"{session.path}: ") and "\n" not in message
    assert re.search(pattern, message), message


def test_summary_command_prints_what_was_read(session, capsys):
    argv = ["summary", str(session.path), "--align", "move_onset_time", "--window-ms", "-300,200", "--bin-ms", "20"]
    argv += ["--condition", "target_pos", "--ei", "cell_type", "--behavior", "hand_vel"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    for row in (
        "| Neurons | 12 (8 E, 4 I) |",
        "| Trials | 38 (4 conditions) |",
        "| Trials dropped | 2 of 40 (1 NaN move_onset_time; 1 window outside the recording",
        "| Conditions (trials) | (-1, 0) (",
        "| E/I labels from | units column 'cell_type' (default mapping) |",
        "| Behavior | 2 (hand_vel_x, hand_vel_y) |",
        "| Bin size | 20 ms |",
        "| Window | -300..200 ms around move_onset_time |",
        "| Inputs from | condition one-hot",
    ):
        assert row in out, row
    assert main(["summary", str(session.path), "--ei", "cell_type:E=RS"]) == 2
    assert "column 'cell_type': expected values mapped to E or I" in capsys.readouterr().err


def test_a_damaged_or_foreign_file_named_nwb_is_refused_in_one_line(tmp_path):
    damaged = tmp_path / "damaged.nwb"
    damaged.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 64)
    with pytest.raises(DatasetError, match=rf"^{damaged}: expected a readable NWB file; found \w+"):
        load_dataset(damaged)
    with pytest.raises(DatasetError, match=r"setting --data-layout/--data-keys: expected only for .npz/.mat files"):
        load_dataset(tmp_path / "damaged.nwb", layout="trials,time,neurons")


def test_windows_outside_the_units_obs_intervals_are_dropped(tmp_path):
    session = write_session(tmp_path / "observed.nwb", n_units=3, n_trials=8, behavior=False, observed_until_s=5.0)
    dataset = load_dataset(session.path, bin_ms=50)  # trials start every 1.25 s and last 1 s
    assert dataset.trial_ids.tolist() == [0, 1, 2, 3]
    assert dataset.meta["dropped_trials"] == "4 window outside a unit's obs_intervals"
