"""Perturbation (optogenetic) trials: data model, files, synthetic trials, the model's drive, scores."""

import dataclasses

import numpy as np
import pytest
import torch

from eirnn.cli import main
from eirnn.data import DatasetError, NeuralDataset, load_dataset, train_val_split
from eirnn.data.perturbations import CONTROL, PerturbationSteps, perturbation_labels, perturbation_steps, trial_types
from eirnn.data.split import without_perturbation_types
from eirnn.data.synthetic import GroundTruth, make_recording
from eirnn.data.synthetic_perturbations import RECORDED_TYPES
from eirnn.data.truth_file import read_truth_for, truth_path
from eirnn.evaluation import evaluate, predict_rates
from eirnn.metrics import NotAvailable
from eirnn.recovery import ground_truth_model, recover, shuffled_within_blocks

TINY = dict(n_e=9, n_i=3, n_bins=60, n_trials=96, n_conditions=4, n_inputs=8)
#: the teachers `make_recording` offers (benchmarks/bench_recovery.py TEACHERS, at TINY size)
TEACHER_OPTIONS = {
    "builtin": {},
    "fully_observed": {"fully_observed": True},
    "strong_recurrence": {"spectral_radius": 1.5},
}


@pytest.fixture(scope="module")
def perturbed():
    return make_recording(seed=3, perturbation_fraction=0.5, **TINY)


def small_file_variables(**changes):
    """A valid .npz recording of 6 trials x 10 bins of 25 ms x 4 neurons with 3 perturbations."""
    rng = np.random.default_rng(0)
    variables = {
        "spikes": rng.poisson(1.0, (6, 10, 4)),
        "inputs": np.ones((6, 10, 2)),
        "conditions": np.array([0, 1, 0, 1, 0, 1]),
        "ei_labels": np.array(["E", "E", "I", "I"]),
        "bin_ms": 25.0,
        "trial_ids": np.array([10, 11, 12, 13, 14, 15]),
        "perturbation_trial": np.array([11, 13, 13]),
        "perturbation_target": np.array(["I", "neurons", "E"]),
        "perturbation_neurons": np.array([[0, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]]),
        "perturbation_onset_ms": np.array([50.0, 0.0, 100.0]),
        "perturbation_offset_ms": np.array([150.0, 100.0, 250.0]),
        "perturbation_kind": np.array(["activation", "inactivation", "activation"]),
        "perturbation_strength": np.array([1.0, 2.0, 0.5]),
    }
    variables.update(changes)
    return {name: value for name, value in variables.items() if value is not None}


def test_file_perturbations_are_read_with_types_steps_and_default_labels(tmp_path):
    path = tmp_path / "opto.npz"
    np.savez(path, **small_file_variables())
    dataset = load_dataset(path)
    types = trial_types(dataset)
    assert types.tolist() == [
        CONTROL,
        "I activation",
        CONTROL,
        "E activation + neurons 0,1 inactivation",
        CONTROL,
        CONTROL,
    ]
    steps = perturbation_steps(dataset)
    assert [channel.target for channel in steps.channels] == ["I", "neurons", "E"]
    assert steps.channels[1].neurons == (0, 1) and steps.channels[1].sign == -1.0
    # on in bin t when onset <= time_ms[t] < offset, time_ms = 0, 25, ... ms
    np.testing.assert_array_equal(steps.values[1, :, 0], [0, 0, 1, 1, 1, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(steps.values[3, :, 1], [2, 2, 2, 2, 0, 0, 0, 0, 0, 0])
    assert not steps.values[[0, 2, 4, 5]].any()
    assert "Perturbation trials | 2 of 6" in dataset.summary()
    assert dataset.facts()["n_perturbed_trials"] == 2


BAD_INPUTS = {
    "unknown target": ({"perturbation_target": np.array(["I", "neurons", "PV"])}, "perturbation_target", "'PV'"),
    "unknown kind": (
        {"perturbation_kind": np.array(["activation", "silence", "activation"])},
        "perturbation_kind",
        "'silence'",
    ),
    "window starts before the trial": (
        {"perturbation_onset_ms": np.array([-50.0, 0.0, 100.0])},
        "perturbation_onset_ms",
        "-50.0",
    ),
    "window ends after the trial": (
        {"perturbation_offset_ms": np.array([150.0, 100.0, 400.0])},
        "perturbation_offset_ms",
        "400.0",
    ),
    "window ends before it starts": (
        {"perturbation_offset_ms": np.array([40.0, 100.0, 250.0])},
        "perturbation_offset_ms",
        "40.0",
    ),
    "lengths disagree": ({"perturbation_strength": np.array([1.0, 2.0])}, "perturbation_strength", "2 entries"),
    "unknown trial": ({"perturbation_trial": np.array([11, 13, 99])}, "perturbation_trial", "99"),
    "neurons missing": ({"perturbation_neurons": None}, "perturbation_neurons", "none"),
    "neurons of another shape": (
        {"perturbation_neurons": np.ones((3, 5))},
        "perturbation_neurons",
        "shape (3, 5)",
    ),
    "negative strength": (
        {"perturbation_strength": np.array([1.0, -2.0, 0.5])},
        "perturbation_strength",
        "-2.0",
    ),
    "a column missing": ({"perturbation_kind": None}, "perturbation_kind", "none"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_perturbations_are_one_line_errors_naming_file_and_variable(tmp_path, case):
    changes, variable, found = BAD_INPUTS[case]
    path = tmp_path / "opto.npz"
    np.savez(path, **small_file_variables(**changes))
    with pytest.raises(DatasetError) as error:
        load_dataset(path)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(str(path)) and f"'{variable}'" in message and found in message


def test_subset_and_split_keep_perturbations_stratified_by_condition_and_type(perturbed):
    dataset, _ = perturbed
    types = trial_types(dataset)
    perturbed_trial = int(np.flatnonzero(types != CONTROL)[0])
    picked = dataset.subset(np.array([5, perturbed_trial, 3, perturbed_trial]))  # a resample repeats trials
    assert trial_types(picked).tolist() == types[[5, perturbed_trial, 3, perturbed_trial]].tolist()
    train, val = train_val_split(dataset, val_fraction=0.25, seed=0)
    assert sorted(set(train.trial_ids) | set(val.trial_ids)) == sorted(dataset.trial_ids)
    for label in np.unique(types):
        for code in range(dataset.n_conditions):
            total = int(((types == label) & (dataset.conditions == code)).sum())
            in_val = int(((trial_types(val) == label) & (val.conditions == code)).sum())
            assert in_val <= max(total - 1, 0)  # every stratum keeps a training trial
        share = (trial_types(val) == label).sum() / (types == label).sum()
        assert 0.1 <= share <= 0.4
    kept = without_perturbation_types(train, "I activation")
    assert (
        "I activation" not in trial_types(kept)
        and kept.n_trials == train.n_trials - (trial_types(train) == "I activation").sum()
    )
    with pytest.raises(DatasetError, match=r"'perturbation_label' .*found 'PV activation'"):
        without_perturbation_types(train, "PV activation")


def test_no_perturbation_fraction_gives_exactly_todays_recording():
    plain, plain_truth = make_recording(seed=3, **TINY)
    none, none_truth = make_recording(seed=3, perturbation_fraction=0.0, **TINY)
    assert none == plain and none.perturbations is None
    for name in ("rates_hz", "w_rec", "w_in", "bias", "w_out"):
        np.testing.assert_array_equal(getattr(none_truth, name), getattr(plain_truth, name))


def test_synthetic_perturbations_reach_their_targets(perturbed):
    dataset, truth = perturbed
    types = trial_types(dataset)
    assert (types != CONTROL).sum() == round(0.5 * dataset.n_trials)
    assert set(types) == {CONTROL, "I activation", "E activation", "E-group inactivation", "I-group inactivation"}
    assert set(truth.perturbation_protocols) > set(types) - {CONTROL}  # some types never recorded
    group = list(truth.perturbation_protocols["E-group inactivation"].channel.neurons)
    protocol = truth.perturbation_protocols["E-group inactivation"]
    window = (dataset.time_ms >= protocol.onset_ms) & (dataset.time_ms < protocol.offset_ms)
    silenced = truth.rates_hz[types == "E-group inactivation"][:, window][..., group].mean()
    control = truth.rates_hz[types == CONTROL][:, window][..., group].mean()
    assert silenced < 0.5 * control


@pytest.mark.parametrize("suffix,per_trial", [(".npz", 2), (".mat", 2), (".nwb", 1), (".nwb", 2)])
def test_simulated_perturbations_round_trip_through_files(tmp_path, suffix, per_trial, capsys):
    out = tmp_path / f"sim{suffix}"
    sizes = ["--n-trials", "40", "--n-bins", "30", "--n-e", "6", "--n-i", "2", "--seed", "2"]
    flags = ["--perturbation-fraction", "0.3", "--perturbations-per-trial", str(per_trial)]
    assert main(["simulate", "--out", str(out), *flags, *sizes]) == 0
    dataset, truth = make_recording(
        seed=2, n_trials=40, n_bins=30, n_e=6, n_i=2, perturbation_fraction=0.3, perturbations_per_trial=per_trial
    )
    assert np.bincount(dataset.perturbations.trial).max() == per_trial
    back = load_dataset(out, bin_ms=25.0 if suffix == ".nwb" else None)
    np.testing.assert_array_equal(back.counts, dataset.counts)
    read, written = back.perturbations, dataset.perturbations
    for column in ("trial", "target", "neurons", "kind", "strength", "label"):
        np.testing.assert_array_equal(getattr(read, column), getattr(written, column))
    # NWB stores the windows in seconds on the session clock: equal up to float rounding
    np.testing.assert_allclose(read.onset_ms, written.onset_ms, atol=1e-6)
    np.testing.assert_allclose(read.offset_ms, written.offset_ms, atol=1e-6)
    np.testing.assert_array_equal(perturbation_steps(back).values, perturbation_steps(dataset).values)
    assert trial_types(back).tolist() == trial_types(dataset).tolist()
    true_circuit = read_truth_for(out, back.meta["sha256"])
    assert true_circuit.perturbation_protocols == truth.perturbation_protocols
    np.testing.assert_array_equal(true_circuit.w_rec, truth.w_rec)
    assert read_truth_for(out, "another hash") is None and truth_path(out).is_file()


def test_trials_with_several_perturbations_count_for_each_of_their_types():
    dataset, _ = make_recording(seed=1, perturbation_fraction=0.5, perturbations_per_trial=2, **TINY)
    types = set(trial_types(dataset)) - {CONTROL}
    assert all(" + " in label for label in types)
    # what training saw of each type, e.g. for the held-out scores: every recorded type, in pairs
    assert perturbation_labels(dataset) == set(RECORDED_TYPES)
    assert perturbation_labels(dataset.subset(trial_types(dataset) == CONTROL)) == set()


def first_input_group(dataset):
    """The trials that share the most common first input (one shared burn-in state)."""
    _, inverse, counts = np.unique(dataset.inputs[:, 0], axis=0, return_inverse=True, return_counts=True)
    return dataset.subset(inverse.ravel() == np.argmax(counts))


@pytest.mark.parametrize("teacher", TEACHER_OPTIONS)
def test_every_teacher_records_its_perturbations_on_the_same_trials_as_without(teacher):
    dataset, truth = make_recording(seed=3, perturbation_fraction=0.5, **TINY, **TEACHER_OPTIONS[teacher])
    _, plain_truth = make_recording(seed=3, **TINY, **TEACHER_OPTIONS[teacher])
    assert isinstance(truth, GroundTruth) and np.array_equal(truth.w_rec, plain_truth.w_rec)
    types = trial_types(dataset)
    assert (types != CONTROL).sum() == round(0.5 * dataset.n_trials)
    # the perturbations draw from their own stream: the same noise, so every difference is theirs
    control = types == CONTROL
    np.testing.assert_array_equal(truth.rates_hz[control], plain_truth.rates_hz[control])
    for label in ("E-group inactivation", "I-group inactivation"):
        protocol = truth.perturbation_protocols[label]
        group = list(protocol.channel.neurons)
        before = dataset.time_ms < protocol.onset_ms
        window = (dataset.time_ms > protocol.onset_ms) & (dataset.time_ms < protocol.offset_ms)
        silenced, unperturbed = truth.rates_hz[types == label], plain_truth.rates_hz[types == label]
        np.testing.assert_array_equal(silenced[:, before], unperturbed[:, before])
        assert silenced[:, window][..., group].mean() < unperturbed[:, window][..., group].mean()


@pytest.mark.parametrize("teacher", TEACHER_OPTIONS)
def test_true_network_predicts_its_perturbed_trials_exactly_with_noise_off(teacher):
    dataset, truth = make_recording(seed=3, perturbation_fraction=0.5, **TINY, **TEACHER_OPTIONS[teacher])
    group = first_input_group(dataset)
    assert (trial_types(group) != CONTROL).any()
    twin = ground_truth_model(truth, dataset.bin_ms, group.inputs[:, 0])
    steps = perturbation_steps(group)
    predicted = predict_rates(twin, group.inputs, perturbation=steps).rates.numpy()[..., : dataset.n_neurons]
    simulated = truth.simulate_rates(group.inputs, dataset.bin_ms, steps, noise=False)
    # the model's output t is the state after input t, the generator's the state before it
    np.testing.assert_allclose(predicted[:, :-1], simulated[:, 1:], rtol=1e-4, atol=1e-3)
    unperturbed = predict_rates(twin, group.inputs).rates.numpy()[..., : dataset.n_neurons]
    control = trial_types(group) == CONTROL
    np.testing.assert_array_equal(predicted[control], unperturbed[control])
    assert np.abs(predicted[~control] - unperturbed[~control]).max() > 1.0


def test_heldout_perturbation_types_scored_against_the_truth_and_the_null(perturbed):
    dataset, truth = perturbed
    twin = ground_truth_model(truth, dataset.bin_ms, dataset.inputs[:, 0])
    trained = {"I activation", "E activation"}
    result = recover(twin, truth, dataset, seed=0, trained_types=trained)
    metrics = result.metrics
    assert metrics["gt_heldout_perturbation_corr"] == pytest.approx(1.0, abs=1e-6)
    assert metrics["gt_heldout_perturbation_sign_agreement"] == 1.0
    assert metrics["gt_trained_perturbation_corr"] == pytest.approx(1.0, abs=1e-6)
    assert metrics["gt_null_heldout_perturbation_corr"] < 0.9
    assert {label for label, effect in result.type_effects.items() if not effect.heldout} == trained
    null = recover(shuffled_within_blocks(twin, 1), truth, dataset, seed=0, trained_types=trained)
    assert null.metrics["gt_heldout_perturbation_corr"] < metrics["gt_heldout_perturbation_corr"] - 0.1


def test_evaluation_scores_control_and_perturbed_trials_separately(perturbed):
    dataset, truth = perturbed
    dataset = dataclasses.replace(dataset, counts=None, rates=truth.rates_hz)  # no Poisson noise
    twin = ground_truth_model(truth, dataset.bin_ms, dataset.inputs[:, 0])
    seeing = evaluate(_recorded_only(twin, dataset, sees=True), dataset, ceiling_splits=4).metric_values()
    blind = evaluate(_recorded_only(twin, dataset, sees=False), dataset, ceiling_splits=4).metric_values()
    # the same network, with and without the perturbations: equal on control trials only
    assert seeing["control_cond_psth_corr"] == blind["control_cond_psth_corr"] > 0.5
    assert seeing["perturbed_cond_psth_corr"] > blind["perturbed_cond_psth_corr"] + 0.03
    control = dataset.subset(trial_types(dataset) == CONTROL)
    values = evaluate(_recorded_only(twin, dataset, sees=True), control, ceiling_splits=4).metric_values()
    assert isinstance(values["perturbed_cond_psth_corr"], NotAvailable)


def _recorded_only(twin, dataset, sees):
    """The twin without its hidden units (it reads them out as extra neurons); `sees`: whether
    it is given the trials' perturbations."""

    class Recorded(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.twin = twin

        def prepare_inputs(self, inputs, spikes=None, perturbation=None):
            return twin.prepare_inputs(inputs, perturbation=perturbation if sees else None)

        def forward(self, prepared, noise=None, generator=None):
            output = twin(prepared, noise=noise, generator=generator)
            output.rates = output.rates[..., : dataset.n_neurons]
            return output

    return Recorded()


def write_coded_session(path, codes, column="PhotostimulationType"):
    """A small NWB session shaped like DANDI 000221: a coded photostimulation column whose
    meaning the column description gives in words, an OptogeneticStimulusSite, 1 s trials."""
    from pynwb import NWBHDF5IO
    from pynwb.testing.mock.file import mock_NWBFile

    nwbfile = mock_NWBFile(session_description="coded opto session", identifier="coded")
    device = nwbfile.create_device(name="473 nm laser", description="laser")
    nwbfile.create_ogen_site(
        name="photostim", device=device, description="ALM", excitation_lambda=473.0, location="left ALM"
    )
    nwbfile.add_trial_column(column, "0: no stimulation; 3: silencing 0.25 mW from 600 ms after the go cue")
    nwbfile.add_trial_column("condition", "lick direction")
    for trial, code in enumerate(codes):
        start = trial * 1.5
        nwbfile.add_trial(start_time=start, stop_time=start + 1.0, condition="LR"[trial % 2], **{column: code})
    rng = np.random.default_rng(0)
    for _ in range(4):
        nwbfile.add_unit(spike_times=np.sort(rng.uniform(0, 1.5 * len(codes), 60 * len(codes))))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)


def test_nwb_coded_perturbation_column_is_decoded_with_the_users_map(tmp_path):
    path = tmp_path / "coded.nwb"
    write_coded_session(path, [0, 3, 0, 3, 3, 0])
    dataset = load_dataset(path, bin_ms=50.0, perturbations="PhotostimulationType:0=control;3=I/activation/2/600/1200")
    types = trial_types(dataset)
    stimulated = "PhotostimulationType=3"
    assert types.tolist() == [CONTROL, stimulated, CONTROL, stimulated, stimulated, CONTROL]
    table = dataset.perturbations
    # the window is cut to the trial's 1 s: 600..1000 ms
    assert table.onset_ms.tolist() == [600.0] * 3 and table.offset_ms.tolist() == [1000.0] * 3
    assert dataset.meta["optogenetic_sites"] == "photostim (473 nm laser, left ALM, 473 nm)"
    steps = perturbation_steps(dataset)
    assert steps.channels[0].target == "I" and steps.values[1, :, 0].tolist() == [0.0] * 12 + [2.0] * 8


NWB_BAD_MAPS = {
    "a code without meaning": (
        "PhotostimulationType:0=control",
        "code '3' in trial 1",
        "column 'PhotostimulationType'",
    ),
    "an unknown target": ("PhotostimulationType:0=control;3=PV/activation/2/600/1200", "'3=PV/", "perturbations"),
    "too few fields": ("PhotostimulationType:0=control;3=I/activation/2", "'3=I/activation/2'", "perturbations"),
    "an unknown column": ("Laser:0=control", "'Laser'", "no such column"),
}


@pytest.mark.parametrize("case", list(NWB_BAD_MAPS))
def test_nwb_perturbation_maps_that_do_not_fit_are_one_line_errors(tmp_path, case):
    spec, found, where = NWB_BAD_MAPS[case]
    path = tmp_path / "coded.nwb"
    write_coded_session(path, [0, 3, 0])
    with pytest.raises(DatasetError) as error:
        load_dataset(path, bin_ms=50.0, perturbations=spec)
    message = str(error.value)
    assert "\n" not in message and message.startswith(str(path)) and found in message and where in message


def test_perturbation_settings_are_refused_for_binned_files(tmp_path):
    path = tmp_path / "opto.npz"
    np.savez(path, **small_file_variables())
    with pytest.raises(DatasetError, match="--perturbations"):
        load_dataset(path, perturbations="PhotostimulationType:0=control")


@pytest.mark.slow
def test_training_on_a_simulated_perturbed_file_logs_the_scores_and_the_report_section(tracking_store, tmp_path):
    from mlflow.tracking import MlflowClient

    import eirnn
    from eirnn.logged_names import PERTURBATION_METRICS, final_metric

    data = tmp_path / "sim_perturbed.npz"
    sizes = ["--n-trials", "64", "--n-bins", "40", "--n-e", "6", "--n-i", "2"]
    assert main(["simulate", "--out", str(data), "--perturbation-fraction", "0.5", *sizes]) == 0
    result = eirnn.train(
        str(data),
        experiment_name="opto",
        register=False,
        max_epochs=2,
        input_embed_dim=8,
        attention_heads=2,
        threads=1,
        heldout_perturbations="E activation",
    )
    assert "E activation" not in trial_types(result.train) and "E activation" in trial_types(result.val)
    logged = MlflowClient().get_run(result.run_id).data.metrics
    for name in PERTURBATION_METRICS:
        assert np.isfinite(logged[final_metric(name)]), name
    assert logged[final_metric("gt_heldout_perturbation_corr")] == pytest.approx(
        result.metrics["gt_heldout_perturbation_corr"]
    )
    report = (tracking_store / "mlruns").rglob("report.md")
    text = next(report).read_text()
    assert "## Perturbation trials" in text and "figures/perturbations.png" in text


def test_a_learned_perturbation_gain_finds_the_scale_of_strengths_given_in_other_units(perturbed):
    dataset, truth = perturbed
    twin = ground_truth_model(truth, dataset.bin_ms, dataset.inputs[:, 0])
    inputs = torch.as_tensor(dataset.inputs)
    with torch.no_grad():
        target = twin(twin.prepare_inputs(inputs, perturbation=perturbation_steps(dataset)), noise=False).rates
    # the same trials with the strengths given in half the drive units: the gain to learn is 2
    steps = perturbation_steps(dataset)
    halved = PerturbationSteps(steps.channels, steps.values / 2)
    learner = ground_truth_model(truth, dataset.bin_ms, dataset.inputs[:, 0])
    learner.log_perturbation_gain = torch.nn.Parameter(torch.zeros(2))
    prepared = learner.prepare_inputs(inputs, perturbation=halved)
    optimizer = torch.optim.Adam([learner.log_perturbation_gain], lr=0.05)
    for _ in range(80):
        loss = ((learner(prepared, noise=False).rates - target) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    np.testing.assert_allclose(learner.log_perturbation_gain.exp().detach().numpy(), [2.0, 2.0], rtol=0.05)


def test_the_perturbation_gain_setting_builds_a_learned_parameter_only_when_asked():
    from eirnn.model import create_model_for_dataset

    dataset, _ = make_recording(seed=0, **TINY)
    fixed = create_model_for_dataset(dataset, input_embed_dim=4, attention_heads=2)
    learned = create_model_for_dataset(dataset, input_embed_dim=4, attention_heads=2, perturbation_gain="learned")
    assert "log_perturbation_gain" not in dict(fixed.named_parameters())
    assert dict(learned.named_parameters())["log_perturbation_gain"].shape == (2,)
    with pytest.raises(ValueError, match="perturbation_gain"):
        create_model_for_dataset(dataset, perturbation_gain="free")


def test_dropping_silent_neurons_keeps_the_perturbations_of_the_others():
    from eirnn.data.validation import check_trainable

    variables = small_file_variables()
    counts = variables["spikes"].copy()
    counts[..., 1] = 0  # neuron 1 never fires; the "neurons" perturbation targets 0 and 1
    dataset = NeuralDataset(
        counts=counts,
        inputs=variables["inputs"],
        conditions=variables["conditions"],
        bin_ms=25.0,
        trial_ids=variables["trial_ids"],
        perturbations={
            name[len("perturbation_") :]: value for name, value in variables.items() if "perturbation" in name
        },
    )
    kept = check_trainable(dataset, drop_silent_neurons=True)
    assert kept.n_neurons == 3 and kept.perturbations.neurons.shape == (3, 3)
    assert trial_types(kept).tolist() == trial_types(dataset).tolist()
    assert perturbation_steps(kept).channels[1].neurons == (0,)


def test_spike_time_files_carry_their_perturbation_variables(tmp_path):
    import scipy.io

    rng = np.random.default_rng(2)
    spikes = np.empty((4, 3), dtype=object)  # trials x neurons, seconds around each trial's time zero
    for index in np.ndindex(spikes.shape):
        spikes[index] = np.sort(rng.uniform(-0.2, 0.3, 10))
    path = tmp_path / "spikes.mat"
    variables = {
        "spike_times": spikes,
        "conditions": np.array(["a", "b", "a", "b"], dtype=object),
        "window_ms": np.array([-200.0, 300.0]),
        "bin_ms": 50.0,
        "perturbation_trial": np.array([1, 2]),
        "perturbation_target": np.array(["I", "E"], dtype=object),
        "perturbation_onset_ms": np.array([0.0, -200.0]),
        "perturbation_offset_ms": np.array([150.0, 300.0]),
        "perturbation_kind": np.array(["activation", "inactivation"], dtype=object),
        "perturbation_strength": np.array([1.0, 4.0]),
    }
    scipy.io.savemat(path, variables)
    dataset = load_dataset(path)
    assert trial_types(dataset).tolist() == [CONTROL, "I activation", "E inactivation", CONTROL]
    # bins centred at -175, -125, ..., 275 ms: on from 0 ms to 150 ms
    assert perturbation_steps(dataset).values[1, :, 0].tolist() == [0.0] * 4 + [1.0] * 3 + [0.0] * 3
