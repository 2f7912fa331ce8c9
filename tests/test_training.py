"""Training: determinism, exact resume, divergence, callbacks, and recovery of a known circuit."""

import itertools
import math

import numpy as np
import pytest
import torch
from conftest import fit_small, tiny_recording

from eirnn.config import TrainConfig
from eirnn.data.synthetic import make_recording
from eirnn.evaluation import evaluate
from eirnn.training import BEST_WEIGHTS_FILE, FINAL_WEIGHTS_FILE, RESUME_FILE, TrainingDivergedError


@pytest.fixture(scope="module")
def small_recording():
    return tiny_recording(seed=1)[0]


def _fit(dataset, **changes):
    return fit_small(dataset, **{"max_epochs": 8, "patience": 50, **changes})


def _trajectory(result):
    return [(h["train_loss"], h["val_psth_corr"]) for h in result.history]


def test_same_seed_gives_identical_metrics(small_recording):
    (_, first), (_, second) = _fit(small_recording), _fit(small_recording)
    assert _trajectory(first) == _trajectory(second)
    (_, other_seed) = _fit(small_recording, seed=1)
    assert _trajectory(other_seed) != _trajectory(first)


def test_resume_from_a_checkpoint_continues_exactly(small_recording, tmp_path):
    _, uninterrupted = _fit(small_recording, max_epochs=10)
    _fit(small_recording, checkpoint_dir=tmp_path, max_epochs=4, checkpoint_every=4)
    assert {p.name for p in tmp_path.iterdir()} >= {RESUME_FILE, BEST_WEIGHTS_FILE, FINAL_WEIGHTS_FILE}
    _, resumed = _fit(small_recording, resume_from=tmp_path / RESUME_FILE, max_epochs=10)
    assert _trajectory(resumed) == _trajectory(uninterrupted)
    assert resumed.best_epoch == uninterrupted.best_epoch


def test_best_weights_file_restores_with_load_state_dict(small_recording, tmp_path):
    prepared, result = _fit(small_recording, checkpoint_dir=tmp_path)
    prepared.model.load_state_dict(torch.load(tmp_path / BEST_WEIGHTS_FILE, weights_only=True))
    for name, value in prepared.model.state_dict().items():
        assert torch.equal(value, result.best_state[name]), name


def test_divergence_raises_with_the_epoch_and_keeps_the_checkpoint(small_recording, tmp_path):
    with pytest.raises(TrainingDivergedError, match=r"the last resumable checkpoint \(after epoch \d+\) is kept"):
        _fit(
            small_recording,
            checkpoint_dir=tmp_path,
            learning_rate=1e6,
            grad_clip=0.0,
            max_epochs=200,
            checkpoint_every=1,
        )
    saved = torch.load(tmp_path / RESUME_FILE, weights_only=True)  # tensors and plain values only
    assert all(torch.isfinite(v).all() for v in saved["model"].values())


def test_divergence_without_a_checkpoint_does_not_claim_one(small_recording):
    with pytest.raises(
        TrainingDivergedError, match=r"epoch \d+: loss is \w+; no checkpoint was written before it"
    ) as caught:
        _fit(small_recording, learning_rate=1e6, grad_clip=0.0, max_epochs=200)
    # an early divergence names the settings that avoid it
    assert caught.value.epoch < 20 and "--lr-schedule warmup" in str(caught.value)


def test_a_callback_can_stop_training(small_recording):
    class StopAtThree:
        def __init__(self):
            self.seen = []

        def on_epoch_end(self, epoch, metrics):
            self.seen.append((epoch, set(metrics)))
            return epoch == 2

    listener = StopAtThree()
    _, result = _fit(small_recording, callbacks=[listener])
    assert result.total_epochs == 3 and result.stop_reason == "callback" and not result.early_stopped
    assert {"train_loss", "val_loss", "val_psth_corr", "val_cond_psth_corr", "epoch_seconds"} <= listener.seen[0][1]


def test_patience_stops_training(small_recording):
    # min_delta 0: any new best restarts patience (the pooled correlation wobbles at this rate;
    # the condition-resolved one rises by ~1e-6 per epoch, which is what min_delta is for)
    _, result = _fit(
        small_recording, learning_rate=1e-7, patience=3, max_epochs=50, min_delta=0.0, selection_metric="psth_corr"
    )
    assert result.early_stopped and result.stop_reason == "patience"
    assert result.total_epochs == result.best_epoch + 4
    # with a minimum rise, the imperceptible gains of a learning rate of 1e-7 do not count
    _, result = _fit(small_recording, learning_rate=1e-7, patience=3, max_epochs=50, min_delta=0.001)
    assert result.stop_reason == "patience" and result.total_epochs == 4
    assert "rose by less than 0.001 in 3 epochs" in result.stop_detail


def test_recovers_a_known_circuit_up_to_the_noise_ceiling():
    """A small ground-truth recording: the fit reaches 80% of what the data allow, with a Fano
    factor within 30% of the data's."""
    dataset, _ = make_recording(seed=0, n_e=12, n_i=4, n_trials=240, n_bins=50)
    prepared, result = _fit(
        dataset, max_epochs=150, patience=150, learning_rate=0.01, input_embed_type="linear", input_embed_dim=16
    )
    prepared.model.load_state_dict(result.best_state)
    evaluation = evaluate(prepared.model, prepared.val)
    metrics = evaluation.scalar_metrics()
    assert metrics["cond_psth_corr"] >= 0.8 * metrics["cond_noise_ceiling"], metrics
    assert math.isclose(metrics["fano_model"], metrics["fano_data"], rel_tol=0.3), metrics
    assert np.isfinite(metrics["bits_per_spike"])


def test_validation_scorer_matches_the_metric_definitions(small_recording):
    from eirnn.metrics import condition_psth_correlation, psth_correlation
    from eirnn.training import ValidationScorer

    model_rates = np.random.default_rng(0).gamma(2.0, 5.0, size=small_recording.rates_hz.shape).astype(np.float32)
    scored = ValidationScorer(small_recording, torch.device("cpu"))(torch.as_tensor(model_rates))
    overall = psth_correlation(model_rates, small_recording.rates_hz, small_recording.ei_labels)
    by_condition = condition_psth_correlation(
        model_rates, small_recording.rates_hz, small_recording.conditions, small_recording.ei_labels
    )
    expected = [overall.mean, overall.mean_e, overall.mean_i, by_condition.mean]
    got = [scored[k] for k in ("val_psth_corr", "val_psth_corr_E", "val_psth_corr_I", "val_cond_psth_corr")]
    # the scorer averages in float32 on the device: equal up to float32 rounding
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_validation_bits_per_spike_is_the_metric_on_the_same_rates(small_recording):
    from eirnn.metrics import bits_per_spike
    from eirnn.training import ValidationScorer

    model_rates = np.random.default_rng(1).gamma(2.0, 5.0, size=small_recording.counts.shape).astype(np.float32)
    scored = ValidationScorer(small_recording, torch.device("cpu"))(torch.as_tensor(model_rates))
    expected = bits_per_spike(model_rates.astype(float) * small_recording.bin_s, small_recording.counts)
    assert scored["val_bits_per_spike"] == pytest.approx(float(expected), abs=1e-5)


def test_plateau_schedule_halves_the_rate_and_resumes_exactly(small_recording, tmp_path):
    # min_delta 1: no epoch after the first counts as a rise, so the rate halves every patience/4 + 1 epochs
    plateau = dict(lr_schedule="plateau", learning_rate=1e-3, patience=8, min_delta=1.0, max_epochs=10)
    _, uninterrupted = _fit(small_recording, **plateau)
    rates = [entry["learning_rate"] for entry in uninterrupted.history]
    assert rates == [1e-3] * 3 + [5e-4] * 3 + [2.5e-4] * 3
    _fit(small_recording, checkpoint_dir=tmp_path, checkpoint_every=4, **{**plateau, "max_epochs": 4})
    _, resumed = _fit(small_recording, resume_from=tmp_path / RESUME_FILE, **plateau)
    assert [entry["learning_rate"] for entry in resumed.history] == rates
    assert _trajectory(resumed) == _trajectory(uninterrupted)


def test_warmup_schedule_rises_then_holds_the_base_rate():
    from eirnn.training.schedules import WARMUP_EPOCHS, epoch_learning_rate

    config = TrainConfig(learning_rate=0.01, max_epochs=50)
    rates = [epoch_learning_rate("warmup", config, epoch, [], -1) for epoch in range(50)]
    assert rates[0] == pytest.approx(0.01 / WARMUP_EPOCHS)
    assert all(later > earlier for earlier, later in itertools.pairwise(rates[:WARMUP_EPOCHS]))
    assert rates[WARMUP_EPOCHS - 1 :] == [0.01] * (50 - WARMUP_EPOCHS + 1)


def test_warmup_cosine_schedule_rises_then_decays_to_the_floor():
    from eirnn.training.schedules import FLOOR, WARMUP_EPOCHS, epoch_learning_rate

    config = TrainConfig(learning_rate=0.01, max_epochs=110)
    rates = [epoch_learning_rate("warmup_cosine", config, epoch, [], -1) for epoch in range(110)]
    assert rates[0] == pytest.approx(0.01 / WARMUP_EPOCHS) and rates[WARMUP_EPOCHS - 1] == pytest.approx(0.01)
    assert rates[WARMUP_EPOCHS] == pytest.approx(0.01)
    assert all(later < earlier for earlier, later in zip(rates[WARMUP_EPOCHS:], rates[WARMUP_EPOCHS + 1 :]))
    assert rates[-1] == pytest.approx(0.01 * FLOOR, rel=1e-3)
