"""NLB single-trial metrics against nlb_tools' own values (tests/data/nlb_reference, produced by
its make_reference.py in a side environment with nlb_tools 0.0.3) on fixed arrays with NaN padding."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from eirnn import metrics as M

REFERENCE = Path(__file__).parent / "data" / "nlb_reference"


@pytest.fixture(scope="module")
def arrays():
    with np.load(REFERENCE / "arrays.npz") as data:
        return {name: data[name] for name in data.files}


@pytest.fixture(scope="module")
def expected():
    return json.loads((REFERENCE / "reference.json").read_text())


def test_co_bps_equals_nlb_tools_on_held_out_neurons(arrays, expected):
    evaluation, forward = arrays["evaluation"], int(arrays["forward_bins"])
    rates, spikes = arrays["model_rates"][evaluation], arrays["spikes"][evaluation]
    got = M.co_bps(rates[:, :-forward], spikes[:, :-forward], arrays["heldout"].tolist())
    assert got == pytest.approx(expected["co_bps"], rel=1e-12)
    assert not M.is_available(M.co_bps(rates, spikes, []))


def test_fp_bps_equals_nlb_tools_on_the_last_bins(arrays, expected):
    evaluation = arrays["evaluation"]
    got = M.fp_bps(arrays["model_rates"][evaluation], arrays["spikes"][evaluation], int(arrays["forward_bins"]))
    assert got == pytest.approx(expected["fp_bps"], rel=1e-12)
    assert not M.is_available(M.fp_bps(arrays["model_rates"], arrays["spikes"], 0))


def test_bits_per_spike_with_padding_and_zero_rates_equals_nlb_tools(arrays, expected):
    got = M.bits_per_spike(arrays["model_rates"], arrays["spikes"])
    assert got == pytest.approx(expected["bits_per_spike_all"], rel=1e-12)


def test_vel_r2_equals_nlb_tools_ridge_decoder(arrays, expected):
    train, evaluation = arrays["train"], arrays["evaluation"]
    rates, behavior = arrays["model_rates"], arrays["behavior"]
    got = M.vel_r2(rates[train], behavior[train], rates[evaluation], behavior[evaluation])
    assert got == pytest.approx(expected["vel_r2"], rel=1e-9)
    assert not M.is_available(M.vel_r2(rates[train], None, rates[evaluation], None))


def test_psth_r2_equals_nlb_tools_eval_psth(arrays, expected):
    conditions = arrays["conditions"]
    model_psths = M.condition_psths(arrays["model_rates"], conditions)
    assert M.psth_r2(model_psths, arrays["psth"]) == pytest.approx(expected["psth_r2"], rel=1e-12)


def test_reference_states_the_nlb_tools_version(expected):
    assert expected["versions"]["nlb_tools"] == "0.0.3"
