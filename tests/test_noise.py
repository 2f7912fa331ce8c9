import numpy as np
import pytest
import torch
from scipy import stats

from eirnn.model.noise import fill_standard_normal, standard_normal_quantiles


def draw(shape, seed: int, std: float = 1.0, dtype=torch.float32) -> torch.Tensor:
    return fill_standard_normal(torch.empty(shape, dtype=dtype), torch.Generator().manual_seed(seed), std=std)


def test_noise_is_standard_normal_in_distribution():
    sample = draw((40, 50, 60), seed=3).double().numpy().ravel()
    # 120 000 draws: a normal sample's Kolmogorov-Smirnov p-value falls below 1e-3 one time in 1000
    assert stats.kstest(sample, "norm").pvalue > 1e-3
    assert abs(sample.mean()) < 4 / np.sqrt(sample.size)
    assert abs(sample.var() - 1) < 4 * np.sqrt(2 / sample.size)
    assert abs(stats.kurtosis(sample)) < 4 * np.sqrt(24 / sample.size)


def test_quantile_table_is_within_its_resolution_of_the_normal_distribution():
    values = standard_normal_quantiles(torch.float64).numpy()
    assert np.all(np.diff(values) > 0)
    levels = (np.arange(values.size) + 0.5) / values.size
    assert np.max(np.abs(stats.norm.cdf(values) - levels)) < 1 / values.size
    assert values.mean() == pytest.approx(0, abs=1e-12)
    assert values.var() == pytest.approx(1, abs=1e-12)


def test_noise_is_scaled_seeded_and_the_same_on_any_number_of_threads():
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one_thread = draw((7, 9, 11), seed=5, std=0.1)
        torch.set_num_threads(2)
        two_threads = draw((7, 9, 11), seed=5, std=0.1)
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(one_thread, two_threads, rtol=0, atol=0)
    torch.testing.assert_close(draw((7, 9, 11), seed=5), one_thread / 0.1)
    assert not torch.equal(draw((7, 9, 11), seed=6, std=0.1), one_thread)
    assert draw((3, 4), seed=5, dtype=torch.float64).dtype == torch.float64
