"""Trials as labs store them in NWB: in any intervals table (--trials-table), kept by column values
(--keep-trials), with conditions as numbers, text or bytes and missing values dropped; a
session whose trials live in a named table trains end to end through `mlflow run`."""

import mlflow
import numpy as np
import pytest
from conftest import REPO, small_project_parameters
from mlflow.tracking import MlflowClient
from nwb_sessions import write_tables

from eirnn.cli import main
from eirnn.data import DatasetError, load_dataset
from eirnn.data.nwb_trials import parse_trial_filters

N_TRIALS = 24


def _columns(seed=0):
    """Trials of 1 s every 1.5 s, a stimulus onset 0.2-0.4 s in, columns of every kind."""
    rng = np.random.default_rng(seed)
    start = np.arange(N_TRIALS) * 1.5
    return {
        "start_time": start,
        "stop_time": start + 1.0,
        "stim_onset": start + rng.uniform(0.2, 0.4, N_TRIALS),
        "success": np.arange(N_TRIALS) % 4 != 3,  # booleans
        "stimCategory": (np.arange(N_TRIALS) % 3).astype(float),  # numbers stored as floats
        "block": np.array(["learn", "test"])[np.arange(N_TRIALS) // 12],  # text
        "side": np.array([b"L", b"R"])[np.arange(N_TRIALS) % 2],  # bytes
    }


def _trains(seed=0, n_units=5):
    rng = np.random.default_rng(seed)
    end = N_TRIALS * 1.5
    return [np.sort(rng.uniform(0, end, int(30 * end))) for _ in range(n_units)]


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """Trials only in `encoding_table` (beside an unrelated `recognition_table`), as a human MTL
    session keeps them."""
    columns = _columns()
    recognition = {
        name: columns[name][:6] + (100.0 if name.endswith("time") else 0) for name in ("start_time", "stop_time")
    }
    path = tmp_path_factory.mktemp("intervals") / "mtl_session.nwb"
    write_tables(path, _trains(), {"encoding_table": columns, "recognition_table": recognition})
    return path, columns


def test_trials_from_a_named_table_and_its_listing(session, capsys):
    path, _ = session
    with pytest.raises(DatasetError) as caught:
        load_dataset(path)
    message = str(caught.value)
    assert "table 'trials': expected one table of trials" in message
    assert (
        "intervals/encoding_table (24 rows: start_time, stop_time, stim_onset, success, stimCategory, block, side)"
        in message
    )
    assert "intervals/recognition_table (6 rows: start_time, stop_time)" in message

    dataset = load_dataset(path, trials_table="encoding_table", bin_ms=50)
    assert dataset.n_trials == N_TRIALS and dataset.n_bins == 20
    assert dataset.meta["trials_table"] == "intervals/encoding_table"
    by_path = load_dataset(path, trials_table="intervals/encoding_table", bin_ms=50)
    np.testing.assert_array_equal(by_path.counts, dataset.counts)

    assert main(["summary", str(path), "--trials-table", "encoding_table", "--bin-ms", "50"]) == 0
    out = capsys.readouterr().out
    assert "| Trials table | intervals/encoding_table |" in out
    assert "| Interval tables in the file | intervals/encoding_table (24 rows: start_time, stop_time, stim_onset" in out


@pytest.mark.parametrize(
    "keep, kept",
    [
        ("success=1", lambda c: c["success"]),
        ("success=true", lambda c: c["success"]),
        ("success!=True", lambda c: ~c["success"]),
        ("stimCategory=0,1", lambda c: np.isin(c["stimCategory"], [0, 1])),
        ("stimCategory=2.0", lambda c: c["stimCategory"] == 2),
        ("block=test", lambda c: c["block"] == "test"),
        ("side=R", lambda c: c["side"] == b"R"),
        ("success=1; stimCategory!=0 ;side=L", lambda c: c["success"] & (c["stimCategory"] != 0) & (c["side"] == b"L")),
    ],
)
def test_a_filter_keeps_exactly_the_trials_it_names(session, keep, kept):
    path, columns = session
    dataset = load_dataset(path, trials_table="encoding_table", bin_ms=50, keep_trials=keep)
    expected = np.flatnonzero(kept(columns))
    assert dataset.trial_ids.tolist() == expected.tolist()
    # each filter's count: the trials it drops among those the filters before it kept
    alive = np.ones(N_TRIALS, dtype=bool)
    reported = []
    for trial_filter in parse_trial_filters(keep, "x"):
        single = load_dataset(path, trials_table="encoding_table", bin_ms=50, keep_trials=str(trial_filter))
        passes = np.isin(np.arange(N_TRIALS), single.trial_ids)
        if (alive & ~passes).any():
            reported.append(f"{int((alive & ~passes).sum())} not {trial_filter}")
        alive &= passes
    assert dataset.meta["dropped_trials"] == "; ".join(reported)
    assert dataset.meta["n_trials_dropped"] == N_TRIALS - len(expected)
    assert dataset.facts()["trial_filters"] == "; ".join(str(f) for f in parse_trial_filters(keep, "x"))


def test_windows_aligned_to_an_event_column_and_past_the_trial_dropped(session):
    path, columns = session
    dataset = load_dataset(path, trials_table="encoding_table", align="stim_onset", window_ms="-200,700", bin_ms=50)
    past = columns["stim_onset"] + 0.7 > columns["stop_time"]
    assert dataset.trial_ids.tolist() == np.flatnonzero(~past).tolist()
    assert dataset.meta["dropped_trials"] == f"{int(past.sum())} window ends after stop_time"


def test_conditions_as_numbers_text_and_bytes_with_missing_values_dropped(tmp_path):
    columns = _columns()
    category = columns["stimCategory"].copy()
    category[[2, 5]] = np.nan  # catch trials
    label = np.array(["face", "house", "", "nan", "face", "house"] * 4)
    path = write_tables(
        tmp_path / "conditions.nwb", _trains(), {"trials": {**columns, "stimCategory": category, "label": label}}
    )
    by_number = load_dataset(path, bin_ms=50, condition="stimCategory")
    assert by_number.condition_labels == [0, 1, 2] and by_number.trial_ids.tolist() == [
        t for t in range(N_TRIALS) if t not in (2, 5)
    ]
    assert by_number.meta["dropped_trials"] == "2 no value in condition column stimCategory"
    by_text = load_dataset(path, bin_ms=50, condition="label")
    assert by_text.condition_labels == ["face", "house"]
    assert (
        by_text.meta["dropped_trials"] == f"{int(np.isin(label, ['', 'nan']).sum())} no value in condition column label"
    )
    by_bytes = load_dataset(path, bin_ms=50, condition="side,block")
    assert by_bytes.condition_labels == ["L, learn", "L, test", "R, learn", "R, test"]
    combined = load_dataset(path, bin_ms=50, condition="stimCategory,label")
    assert "nan" not in " ".join(map(str, combined.condition_labels))
    n_missing = int((np.isnan(category) | np.isin(label, ["", "nan"])).sum())
    assert combined.meta["dropped_trials"] == f"{n_missing} no value in condition columns stimCategory, label"


@pytest.mark.slow
def test_a_session_with_trials_in_a_named_table_trains_through_mlflow_run(tmp_path, tracking_store):
    columns = _columns(seed=3)
    trains = _trains(seed=3, n_units=6)
    trains[2] = np.concatenate([trains[2], trains[2][:5], [np.nan]])  # a usable file with problems
    path = write_tables(tmp_path / "mtl.nwb", trains, {"encoding_table": columns})
    submitted = mlflow.projects.run(
        str(REPO),
        entry_point="main",
        parameters=small_project_parameters(
            data=str(path),
            trials_table="encoding_table",
            keep_trials="success=1;stimCategory=0,1",
            condition="stimCategory",
            bin_ms=50,
            max_epochs=2,
        ),
        env_manager="local",
        synchronous=True,
    )
    run = MlflowClient().get_run(submitted.run_id)
    assert run.info.status == "FINISHED"
    params = run.data.params
    kept = columns["success"] & np.isin(columns["stimCategory"], [0, 1])
    assert params["trials_table"] == "encoding_table" and params["data.trials_table"] == "intervals/encoding_table"
    assert params["data.n_trials"] == str(int(kept.sum()))
    assert params["data.trial_filters"] == "success=1; stimCategory=0,1"
    assert params["data.spike_time_problems"] == (
        "1 non-finite spike times removed (unit index 2); 5 repeated spike times removed (unit index 2)"
    )
    dropped_by_success = int((~columns["success"]).sum())
    assert params["data.dropped_trials"] == (
        f"{dropped_by_success} not success=1; {int((~kept).sum()) - dropped_by_success} not stimCategory=0,1"
    )


def test_events_stored_relative_to_the_trial_start_align_as_start_time_plus_the_column(tmp_path):
    """As the Svoboda lab's sessions store them: refused as session-clock times, with the way out
    named; 'start_time+COLUMN' gives what the same events on the session clock give."""
    columns = _columns()
    relative = {**columns, "stim_rel": columns["stim_onset"] - columns["start_time"]}
    path = write_tables(tmp_path / "relative.nwb", _trains(), {"trials": relative})
    window = dict(window_ms="-100,500", bin_ms=50, condition="stimCategory", inputs="cue-go")
    with pytest.raises(DatasetError, match=r"column 'stim_rel': .*\(then align on start_time\+stim_rel\)"):
        load_dataset(path, align="stim_rel", **window)
    events = dict(cue_event="start_time", go_event="start_time + stim_rel")
    summed = load_dataset(path, align="start_time+stim_rel", **window, **events)
    absolute = load_dataset(path, align="stim_onset", **window, cue_event="start_time", go_event="stim_onset")
    assert summed.n_trials == absolute.n_trials > 0
    np.testing.assert_array_equal(summed.counts, absolute.counts)
    np.testing.assert_array_equal(summed.inputs, absolute.inputs)
    assert summed.meta["align"] == "start_time+stim_rel"
