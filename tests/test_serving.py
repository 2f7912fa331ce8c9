"""`mlflow models serve` of the registered champion, end to end over loopback HTTP.

A tiny model is trained and registered into a temp SQLite store; the real MLflow scoring server
is started on a free loopback port as a subprocess and asked for rates; its answer must match
`eirnn.load_model` + `predict_rates` on the same inputs.
"""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import small_settings

from eirnn.config import TrainConfig
from eirnn.tracking.ui import free_port, stop_server

SMALL_MODEL = small_settings()
STARTUP_TIMEOUT_S = 120.0
REQUEST_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
N_TRIALS, N_BINS = 3, 17  # neither the training trials nor bins: the signature takes any


def _mlflow_executable() -> str:
    # conftest puts this interpreter's bin folder first on PATH; name it outright all the same
    candidate = Path(sys.executable).parent / "mlflow"
    return str(candidate) if candidate.exists() else "mlflow"


def _get(url: str, timeout: float) -> int:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status


def _post_json(url: str, payload: dict, timeout: float) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        assert response.status == 200
        return json.loads(response.read())


def _wait_until_up(server: subprocess.Popen, base_url: str, log_file: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"mlflow models serve exited with {server.returncode}:\n{log_file.read_text()[-4000:]}")
        try:
            if _get(f"{base_url}/ping", timeout=2.0) == 200:
                return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.5)
    pytest.fail(f"/ping did not answer 200 within {STARTUP_TIMEOUT_S:.0f} s:\n{log_file.read_text()[-4000:]}")


@pytest.mark.slow
def test_served_champion_answers_invocations_like_load_model(tracking_store, tiny_recording_file):
    import eirnn
    from eirnn.evaluation import predict_rates
    from eirnn.tracking.mlflow_run import train_and_log

    outcome = train_and_log(TrainConfig(data=str(tiny_recording_file), max_epochs=3, **SMALL_MODEL))
    assert outcome.model_version is not None and outcome.champion_version == outcome.model_version

    model = eirnn.load_model("eirnn")
    n_inputs = int(model.n_inputs)
    n_neurons = int(model.n_recorded)
    rng = np.random.default_rng(7)
    # task-like inputs: binary channels, plus a graded one so that any float is exercised
    inputs = (rng.random((N_TRIALS, N_BINS, n_inputs)) < 0.3).astype(np.float32)
    inputs[..., -1] = rng.uniform(0.0, 1.0, (N_TRIALS, N_BINS)).astype(np.float32)
    expected = predict_rates(model, inputs).rates.numpy()
    assert expected.shape == (N_TRIALS, N_BINS, n_neurons)

    port = free_port("127.0.0.1", 0)
    base_url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": os.environ["MLFLOW_TRACKING_URI"]}
    log_file = tracking_store / "serve.log"
    with open(log_file, "wb") as log:
        server = subprocess.Popen(
            [
                _mlflow_executable(),
                "models",
                "serve",
                "-m",
                "models:/eirnn@champion",
                "--env-manager",
                "local",
                "--host",
                "127.0.0.1",
                "-p",
                str(port),
                "-w",
                "1",
            ],
            cwd=tracking_store,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so that stopping it reaches its workers
        )
    try:
        _wait_until_up(server, base_url, log_file)
        answer = _post_json(f"{base_url}/invocations", {"inputs": inputs.tolist()}, REQUEST_TIMEOUT_S)
        silenced = _post_json(
            f"{base_url}/invocations", {"inputs": inputs.tolist(), "params": SILENCE_I}, REQUEST_TIMEOUT_S
        )
        # a second shape through the same server: trials and bins are free
        other = _post_json(f"{base_url}/invocations", {"inputs": inputs[:1, :5].tolist()}, REQUEST_TIMEOUT_S)
        # a wrong number of input channels is refused by the signature, not answered
        wrong = np.zeros((1, 4, n_inputs + 1), dtype=np.float32)
        with pytest.raises(urllib.error.HTTPError) as refused:
            _post_json(f"{base_url}/invocations", {"inputs": wrong.tolist()}, REQUEST_TIMEOUT_S)
        refusal = refused.value.read().decode()
    finally:
        stop_server(server, STOP_TIMEOUT_S)

    assert set(answer) == {"predictions"}
    predictions = np.asarray(answer["predictions"], dtype=np.float64)
    assert predictions.shape == (N_TRIALS, N_BINS, n_neurons)
    np.testing.assert_allclose(predictions, expected, rtol=1e-5, atol=0)
    assert np.all(predictions >= 0)  # rates in Hz
    np.testing.assert_allclose(np.asarray(other["predictions"]), expected[:1, :5], rtol=1e-5, atol=0)
    np.testing.assert_allclose(
        np.asarray(silenced["predictions"]),
        predict_rates(model, inputs, perturbation=silence_steps(model)).rates,
        rtol=1e-5,
        atol=1e-6,
    )
    assert refused.value.code == 400, refusal
    assert f"(-1, -1, {n_inputs})" in refusal, refusal


#: silence the I population of trial 1 from 100 to 300 ms (params of the served model)
ONSET_MS, OFFSET_MS = 100.0, 300.0
SILENCE_I = {
    "perturbation_trial": [1],
    "perturbation_target": ["I"],
    "perturbation_onset_ms": [ONSET_MS],
    "perturbation_offset_ms": [OFFSET_MS],
    "perturbation_kind": ["inactivation"],
    "perturbation_strength": [3.0],
}


def silence_steps(model, time_ms=None):
    """SILENCE_I as the in-process model takes it (`PerturbationSteps` on `time_ms`, by default
    the bins 0, bin_ms, ...)."""
    from eirnn.data.perturbations import PerturbationTable

    table = PerturbationTable(
        trial=np.array([1]),
        target=np.array(["I"]),
        neurons=np.zeros((1, int(model.n_recorded)), dtype=bool),
        onset_ms=np.array([ONSET_MS]),
        offset_ms=np.array([OFFSET_MS]),
        kind=np.array(["inactivation"]),
        strength=np.array([3.0]),
        label=np.array(["I inactivation"]),
    )
    return table.steps(N_TRIALS, np.arange(N_BINS) * float(model.hparams["dt"]) if time_ms is None else time_ms)


def test_the_registered_model_applies_perturbations_given_as_params_as_the_trained_model_does(
    tracking_store, tiny_recording_file
):
    import mlflow

    import eirnn
    from eirnn.evaluation import predict_rates
    from eirnn.tracking.mlflow_run import train_and_log

    train_and_log(TrainConfig(data=str(tiny_recording_file), max_epochs=2, **SMALL_MODEL))
    model = eirnn.load_model("eirnn")
    served = mlflow.pyfunc.load_model("models:/eirnn@champion")
    inputs = (np.random.default_rng(3).random((N_TRIALS, N_BINS, int(model.n_inputs))) < 0.3).astype(np.float32)
    steps = silence_steps(model)
    control = served.predict(inputs)
    silenced = served.predict(inputs, params=SILENCE_I)
    expected = predict_rates(model, inputs, perturbation=steps).rates.numpy()
    np.testing.assert_allclose(silenced, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(control, predict_rates(model, inputs).rates.numpy(), rtol=1e-5, atol=1e-6)
    # trials 0 and 2 and the bins before the window are controls, bit for bit
    np.testing.assert_array_equal(silenced[[0, 2]], control[[0, 2]])
    first = int(np.ceil(ONSET_MS / float(model.hparams["dt"])))
    assert 0 < first < N_BINS
    np.testing.assert_array_equal(silenced[1, :first], control[1, :first])
    assert np.abs(silenced[1, first:] - control[1, first:]).max() > 1e-3
    # bin times given: the window falls on other bins, as for the in-process model on that time axis
    time_ms = np.arange(N_BINS) * float(model.hparams["dt"]) - 100.0
    shifted = served.predict(inputs, params={**SILENCE_I, "time_ms": time_ms.tolist()})
    expected = predict_rates(model, inputs, perturbation=silence_steps(model, time_ms)).rates.numpy()
    np.testing.assert_allclose(shifted, expected, rtol=1e-5, atol=1e-6)
    assert np.abs(shifted - silenced).max() > 1e-3
    with pytest.raises(Exception, match=rf"params 'time_ms': expected {N_BINS} bin times"):
        served.predict(inputs, params={**SILENCE_I, "time_ms": [0.0, 25.0]})
    with pytest.raises(Exception, match=r"params 'perturbation_kind': expected 'activation' or 'inactivation'"):
        served.predict(inputs, params={**SILENCE_I, "perturbation_kind": ["silencing"]})
    with pytest.raises(Exception, match=r"params 'perturbation_neurons': expected neuron indices 0\.\."):
        served.predict(
            inputs, params={**SILENCE_I, "perturbation_target": ["neurons"], "perturbation_neurons": ["999"]}
        )


def test_defining_the_served_model_prints_no_type_hint_warning():
    """MLflow checks `predict`'s type hints when the class is defined (at every model logging and
    loading) and warns when there are none; the np.ndarray hint silences it without switching on
    MLflow's input validation (the logged signature stays the schema)."""
    code = (
        "import warnings; warnings.simplefilter('always')\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    import eirnn.tracking.serving\n"
        "from mlflow.types.type_hints import _signature_cannot_be_inferred_from_type_hint as no_schema\n"
        "hints = eirnn.tracking.serving.RatePredictor().predict_type_hints\n"
        "print([str(w.message) for w in caught if 'predict' in str(w.message)], no_schema(hints.input))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] True"
