"""Ensemble agreement scored against a known circuit: copies of the true network agree on every
answer and are right; block-shuffled nulls of it are not."""

import copy

import numpy as np
import pytest

from eirnn.agreement import VerdictRule, aggregate, auroc, calibrate
from eirnn.circuit_answers import CircuitAnswers, ask_circuit, neuron_groups
from eirnn.data.synthetic import make_recording
from eirnn.recovery import ground_truth_model, shuffled_within_blocks

SIZES = dict(n_e=8, n_i=3, n_trials=24, n_bins=30)


@pytest.fixture(scope="module")
def teacher():
    dataset, truth = make_recording(seed=0, **SIZES)
    twin = ground_truth_model(truth, dataset.bin_ms, dataset.inputs[:, 0])
    return dataset, twin, ask_circuit(twin, dataset, n_starts=8)


def test_copies_of_the_true_network_agree_on_every_answer_and_are_right(teacher):
    dataset, twin, true = teacher
    fits = [ask_circuit(copy.deepcopy(twin), dataset, n_starts=8, seed=k) for k in range(3)]
    agreement = aggregate(fits)
    scores = calibrate(agreement, true)
    assert scores["n_answers"] > 100
    assert scores["coverage"] == 1.0 and scores["precision_agreed"] == 1.0
    assert scores["within_2x_agreed"] == 1.0 and scores["ensemble_mean_corr"] == pytest.approx(1.0)
    assert agreement["n_stable_fixed_points"].agreed.all()


def test_block_shuffled_nulls_agree_on_less_and_get_signs_wrong(teacher):
    dataset, twin, true = teacher
    nulls = [ask_circuit(shuffled_within_blocks(twin, k), dataset, n_starts=8, seed=k) for k in range(4)]
    scores = calibrate(aggregate(nulls), true)
    # Dale's law fixes the signs of population effects, so nulls still agree on many answers
    # (docs/metrics.md); what they cannot do is agree everywhere or be right everywhere
    assert scores["coverage"] < 0.8
    assert scores["precision_all"] < 0.95
    assert scores["ensemble_mean_corr"] < 0.999


def test_sign_fraction_counts_missing_answers_as_disagreeing():
    fits = [CircuitAnswers({"silence_E": np.array([[1.0, -2.0, 3.0]])}) for _ in range(3)]
    fits[2].values["silence_E"] = np.array([[np.nan, -1.0, -3.0]])
    entry = aggregate(fits, VerdictRule(min_sign_fraction=1.0, min_mean_over_spread=0.0))["silence_E"]
    np.testing.assert_allclose(entry.sign_fraction, [[2 / 3, 1.0, 2 / 3]])
    np.testing.assert_array_equal(entry.consensus, [[1.0, -1.0, 1.0]])
    assert entry.agreed.tolist() == [[False, True, False]]
    np.testing.assert_allclose(entry.mean, [[1.0, -5 / 3, 1.0]])


def test_the_rule_asks_the_mean_to_stand_out_from_the_spread():
    fits = [CircuitAnswers({"gain_EI": np.array([value])}) for value in (0.1, 3.0, 0.2)]
    assert not aggregate(fits, VerdictRule(1.0, 1.0))["gain_EI"].agreed[0]
    assert aggregate(fits, VerdictRule(1.0, 0.5))["gain_EI"].agreed[0]


def test_auroc_matches_its_definition():
    assert auroc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == 0.75
    assert auroc(np.ones(4), np.array([0, 1, 0, 1])) == 0.5
    assert np.isnan(auroc(np.ones(3), np.ones(3)))


def test_neuron_groups_are_disjoint_seeded_and_label_blind():
    groups = neuron_groups(12, seed=3)
    assert [len(g) for g in groups.values()] == [3, 3]
    assert not set(groups["group1"]) & set(groups["group2"])
    assert all((groups[k] == neuron_groups(12, seed=3)[k]).all() for k in groups)
