"""Perturbations as labs write them in NWB: ragged trials columns with several per trial, and
OptogeneticSeries power traces (files written with pynwb at test time)."""

import numpy as np
import pytest
from nwb_sessions import write_light_session, write_tables

from eirnn.data import load_dataset
from eirnn.data.perturbations import CONTROL, trial_types

N_TRIALS, EVERY_S, TRIAL_S = 8, 2.0, 1.5


def _trains(n_units=4, seed=0):
    rng = np.random.default_rng(seed)
    end = N_TRIALS * EVERY_S
    return [np.sort(rng.uniform(0, end, 40 * int(end))) for _ in range(n_units)]


def test_ragged_trials_columns_give_each_trial_its_perturbations(tmp_path):
    start = np.arange(N_TRIALS) * EVERY_S
    # trial 1: I activation 200-400 ms after the go cue and units 1,3 silenced 600-900 ms after it;
    # trial 2: one E activation; trial 3: a row whose target is empty (a control entry); others none
    rows = {
        1: [("I", "activation", 0.2, 0.4, 1.5), ("1,3", "inactivation", 0.6, 0.9, 4.0)],
        2: [("E", "activation", 0.1, 1.4, 0.5)],
        3: [("", "activation", 0.1, 0.2, 0.0)],
    }
    go = start + 0.1

    def column(field, on_clock=False):
        return [
            [entry[field] + go[t] if on_clock else entry[field] for entry in rows.get(t, [])] for t in range(N_TRIALS)
        ]

    trials = {
        "start_time": start,
        "stop_time": start + TRIAL_S,
        "go_time": go,
        "perturbation_target": column(0),
        "perturbation_kind": column(1),
        "perturbation_onset_time": column(2, on_clock=True),
        "perturbation_offset_time": column(3, on_clock=True),
        "perturbation_power": column(4),
    }
    path = write_tables(tmp_path / "ragged.nwb", _trains(), {"trials": trials})
    dataset = load_dataset(path, align="go_time", window_ms="-100,1000", bin_ms=50.0)
    table = dataset.perturbations
    assert table.trial.tolist() == [1, 1, 2]
    assert table.target.tolist() == ["I", "neurons", "E"]
    assert table.neurons[1].tolist() == [False, True, False, True]
    np.testing.assert_allclose(table.onset_ms, [200.0, 600.0, 100.0], atol=1e-6)
    # the E activation outlasts the analysed window: cut to its end
    np.testing.assert_allclose(table.offset_ms, [400.0, 900.0, 1000.0], atol=1e-6)
    assert table.strength.tolist() == [1.5, 4.0, 0.5]
    types = trial_types(dataset)
    assert types[1] == "I activation + neurons 1,3 inactivation" and types[2] == "E activation"
    assert set(types[[0, 3, 4, 5, 6, 7]]) == {CONTROL}


RATE_HZ = 1000.0


def _light(*pulses):
    """A power trace (W) at RATE_HZ over the session: (start s, stop s, mW) runs of light."""
    power = np.zeros(int(N_TRIALS * EVERY_S * RATE_HZ))
    for start, stop, milliwatts in pulses:
        power[round(start * RATE_HZ) : round(stop * RATE_HZ)] = milliwatts / 1000.0
    return power


def _light_session(tmp_path, description="I activation", acquired=False):
    start = np.arange(N_TRIALS) * EVERY_S
    train = [(2 * EVERY_S + 0.2 + k * 0.025, 2 * EVERY_S + 0.205 + k * 0.025, 10.0) for k in range(20)]
    power = _light(
        (EVERY_S + 0.3, EVERY_S + 0.6, 5.0),  # trial 1: one 5 mW pulse
        *train,  # trial 2: a 40 Hz train of 5 ms pulses at 10 mW
        (4 * EVERY_S + 0.1, 4 * EVERY_S + 0.3, 3.0),  # trial 4: two runs
        (4 * EVERY_S + 0.8, 4 * EVERY_S + 1.0, 6.0),
    )
    trials = {"start_time": start, "stop_time": start + TRIAL_S}
    return write_light_session(tmp_path / "light.nwb", _trains(), trials, power, RATE_HZ, description, acquired)


@pytest.mark.parametrize("acquired", [False, True])
def test_optogenetic_series_power_gives_windows_and_strengths_per_trial(tmp_path, acquired):
    path = _light_session(tmp_path, acquired=acquired)
    dataset = load_dataset(path, bin_ms=10.0)
    table = dataset.perturbations
    assert table.trial.tolist() == [1, 2, 4, 4]
    assert set(table.target) == {"I"} and set(table.kind) == {"activation"}
    # the pulse train is one window, from its first pulse to the end of its last
    np.testing.assert_allclose(table.onset_ms, [300.0, 200.0, 100.0, 800.0], atol=1e-6)
    np.testing.assert_allclose(table.offset_ms, [600.0, 680.0, 300.0, 1000.0], atol=1e-6)
    train_mw = 20 * 5.0 * 10.0 / 480.0  # 20 pulses of 5 ms at 10 mW over 480 ms
    np.testing.assert_allclose(table.strength, [5.0, train_mw, 3.0, 6.0], rtol=1e-9)
    assert dataset.meta["perturbations_from"] == (
        f"OptogeneticSeries {'acquisition' if acquired else 'stimulus'}/laser_power (site photostim: I activation, "
        "from the site's description)"
    )


def test_optogenetic_site_meaning_can_be_given_or_the_series_ignored(tmp_path):
    path = _light_session(tmp_path, description="VGAT-ChR2, fibre over M1")
    given = load_dataset(path, bin_ms=10.0, optogenetic_sites="photostim=2,3/inactivation")
    assert set(given.perturbations.target) == {"neurons"} and set(given.perturbations.kind) == {"inactivation"}
    assert given.perturbations.neurons[0].tolist() == [False, False, True, True]
    assert load_dataset(path, bin_ms=10.0, optogenetic_sites="ignore").perturbations is None


def test_an_intervals_table_of_perturbation_epochs_is_matched_to_the_trials_by_time(tmp_path):
    start = np.arange(N_TRIALS) * EVERY_S
    epochs = {  # session clock: two in trial 1, one in trial 3, one between trials 5 and 6
        "start_time": np.array([2.1, 2.9, 6.5, 11.6]),
        "stop_time": np.array([2.4, 3.2, 7.9, 11.9]),
        "perturbation_target": np.array(["I", "0,2", "E", "I"]),
        "perturbation_kind": np.array(["activation", "inactivation", "activation", "activation"]),
        "perturbation_power": np.array([1.0, 4.0, 0.5, 2.0]),
    }
    tables = {"trials": {"start_time": start, "stop_time": start + TRIAL_S}, "optogenetic_epochs": epochs}
    path = write_tables(tmp_path / "epochs.nwb", _trains(), tables)
    dataset = load_dataset(path, bin_ms=50.0)
    table = dataset.perturbations
    assert table.trial.tolist() == [1, 1, 3]
    assert table.target.tolist() == ["I", "neurons", "E"] and table.neurons[1].tolist() == [True, False, True, False]
    np.testing.assert_allclose(table.onset_ms, [100.0, 900.0, 500.0], atol=1e-6)
    np.testing.assert_allclose(table.offset_ms, [400.0, 1200.0, 1500.0], atol=1e-6)  # cut to the 1.5 s trial
    assert table.strength.tolist() == [1.0, 4.0, 0.5]
    assert dataset.meta["perturbations_from"] == "intervals table intervals/optogenetic_epochs"


def test_training_on_a_simulated_nwb_file_with_several_perturbations_per_trial(tmp_path):
    """The file holds no task inputs (they are built from the task), so the true circuit beside it,
    driven by other inputs, is not scored; the fit runs and scores control and perturbed trials."""
    import json

    from eirnn.cli import main

    data, folder = tmp_path / "sim.nwb", tmp_path / "run"
    sizes = ["--n-trials", "60", "--n-bins", "30", "--n-e", "6", "--n-i", "2"]
    assert (
        main(
            ["simulate", "--out", str(data), "--perturbation-fraction", "0.5", "--perturbations-per-trial", "2", *sizes]
        )
        == 0
    )
    flags = ["--input-embed-dim", "8", "--attention-heads", "2", "--threads", "1", "--log-figures", "false"]
    argv = ["train", "--data", str(data), "--bin-ms", "25", "--max-epochs", "2", "--no-tracking", "--out", str(folder)]
    assert main([*argv, *flags]) == 0
    metrics = json.loads((folder / "metrics.json").read_text())["final"]
    assert {"control_cond_psth_corr", "perturbed_cond_psth_corr"} <= set(metrics)
    assert not [name for name in metrics if name.startswith("gt_")]
