"""In-silico perturbations (eirnn.in_silico_perturbations) on a champion trained on the built-in recording.

One short training (the built-in recording at its full size, one torch thread) into a plain
folder, its model loaded back from there; every test perturbs that model on the held-out
trials. Dale's law makes the signs predictable: I units only inhibit, so taking their output
away must raise the E units' activity and doubling it must lower it.
"""

import numpy as np
import pytest
from conftest import small_settings

# a short fit: 20 epochs at a raised learning rate reach a validation PSTH r of about 0.3
SHORT_TRAINING = small_settings(max_epochs=20, learning_rate=0.01, checkpoint_every=1000)


@pytest.fixture(scope="module")
def champion(tmp_path_factory):
    """(model, held-out inputs) of a model trained on make_recording(seed=0), default size, with
    no tracking, and loaded back from its run folder's model/."""
    import eirnn
    from eirnn.data.synthetic import make_recording
    from eirnn.model.network_files import find_network_files, load_network

    folder = tmp_path_factory.mktemp("analysis-run")
    dataset, _ = make_recording(seed=0)
    result = eirnn.train(dataset, tracking=False, out=folder, **SHORT_TRAINING)
    model = load_network(*find_network_files(result.folder / "model"))
    return model, result.val.inputs


def test_null_perturbation_changes_nothing(champion):
    from eirnn.in_silico_perturbations import run_perturbation

    model, inputs = champion
    for population, other in (("I", "E"), ("E", "I")):
        result = run_perturbation(model, inputs, population=population, factor=1.0)
        assert np.array_equal(result.perturbed_rates, result.baseline_rates)
        assert np.array_equal(result.perturbed_units, result.baseline_units)
        # mean_activity leaves the perturbed units out: read the other population
        assert result.mean_activity(other, perturbed=True) == result.mean_activity(other, perturbed=False)


def test_silencing_inhibition_raises_excitatory_activity(champion):
    from eirnn.in_silico_perturbations import run_perturbation

    model, inputs = champion
    result = run_perturbation(model, inputs, population="I", factor=0.0)
    assert np.array_equal(np.sort(result.units), np.flatnonzero(result.i_mask))
    before = result.mean_activity("E", perturbed=False)
    after = result.mean_activity("E", perturbed=True)
    assert np.isfinite(before) and np.isfinite(after)
    assert after > before, (
        f"mean E activity with every I unit silenced is {after} against {before} unperturbed "
        f"(runaway_bin {result.runaway_bin} of {inputs.shape[1]})"
    )
    # silenced units are silent: their recorded neurons read 0 Hz (until a runaway leaves float32)
    stop = result.runaway_bin or inputs.shape[1]
    recorded_i = np.isin(model.recorded_units.numpy(), result.units)
    assert np.all(result.perturbed_rates[:, :stop][..., recorded_i] == 0)


def test_silencing_inhibition_raises_excitatory_activity_at_every_bin(champion):
    """The same experiment bin by bin, over the bins before E activity runs away (if it does)."""
    from eirnn.in_silico_perturbations import run_perturbation

    model, inputs = champion
    result = run_perturbation(model, inputs, population="I", factor=0.0)
    stop = result.runaway_bin or inputs.shape[1]
    assert stop > 1
    before = result.baseline_units[:, :stop, result.e_mask].astype(np.float64).mean(axis=(0, 2))
    after = result.perturbed_units[:, :stop, result.e_mask].astype(np.float64).mean(axis=(0, 2))
    assert np.all(np.isfinite(after)) and np.all(after > before)


def test_boosting_inhibition_lowers_excitatory_activity(champion):
    from eirnn.in_silico_perturbations import run_perturbation

    model, inputs = champion
    result = run_perturbation(model, inputs, population="I", factor=2.0)
    assert result.runaway_bin is None and np.all(np.isfinite(result.perturbed_units))
    assert result.mean_activity("E", perturbed=True) < result.mean_activity("E", perturbed=False)


def test_chosen_units_only_are_perturbed(champion):
    """Silencing chosen units zeroes exactly their recorded neurons and leaves the rest running."""
    from eirnn.in_silico_perturbations import run_perturbation

    model, inputs = champion
    chosen = np.flatnonzero(model.i_mask.numpy())[:3]
    result = run_perturbation(model, inputs[:20], units=chosen, factor=0.0)
    assert result.runaway_bin is None  # three of 13 I units: the network stays stable
    recorded_units = model.recorded_units.numpy()
    silenced = np.isin(recorded_units, chosen)
    assert silenced.any()
    assert np.all(result.perturbed_rates[..., silenced] == 0)
    assert np.all(result.perturbed_rates[..., ~silenced] > 0)
    assert not np.array_equal(result.perturbed_rates[..., ~silenced], result.baseline_rates[..., ~silenced])
