"""The fused recurrence against the plain reference loop: outputs and every gradient."""

import pytest
import torch

from eirnn.choices import ACTIVATIONS
from eirnn.model import cpu_threads, create_model_from_data, recurrence
from eirnn.model.reference import ReferenceEIRNN

TOLERANCE = 1e-5


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return ((actual - expected).norm() / expected.norm()).item()


def build_pair(embedding: str, activation: str = "softplus"):
    """Fused model and reference with the same random (perturbed) weights."""
    hparams = dict(
        n_classic=5,
        n_interneuron=2,
        n_inputs=4,
        n_outputs=2,
        input_embed_type=embedding,
        input_embed_dim=8,
        attention_heads=2,
        attention_token_dim=8,
        activation=activation,
        seed=0,
    )
    fused = create_model_from_data(**hparams)
    with torch.no_grad():
        for parameter in fused.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    reference = ReferenceEIRNN(**hparams)
    reference.load_state_dict(fused.state_dict())
    return fused, reference


def run_with_gradients(model, inputs, targets, noise: bool):
    """Outputs and parameter gradients of a loss that uses rates, behaviour and unit rates."""
    model.zero_grad()
    output = model(inputs, noise=noise, generator=torch.Generator().manual_seed(7))
    loss = (
        (output.rates - targets).square().mean()
        + output.behavior.square().mean()
        + (output.units * torch.linspace(-1, 1, output.units.shape[-1])).mean()
    )
    loss.backward()
    gradients = {name: parameter.grad.clone() for name, parameter in model.named_parameters()}
    return output, gradients


def data(batch=6, steps=25, seed=0):
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(batch, 1, 4, generator=generator).repeat(1, steps, 1)
    inputs[:, steps // 2 :] += torch.randn(batch, 1, 4, generator=generator)  # piecewise constant
    return inputs, torch.rand(batch, steps, 7, generator=generator)


def assert_same(fused_run, reference_run):
    (fused_output, fused_grads), (reference_output, reference_grads) = fused_run, reference_run
    for name in ("rates", "units", "behavior"):
        error = relative_error(getattr(fused_output, name), getattr(reference_output, name))
        assert error < TOLERANCE, (name, error)
    assert fused_grads.keys() == reference_grads.keys()
    for name, expected in reference_grads.items():
        error = relative_error(fused_grads[name], expected)
        assert error < TOLERANCE, (name, error)


@pytest.mark.parametrize("noise", [False, True])
@pytest.mark.parametrize("embedding", ["linear", "mlp", "attention"])
def test_fused_path_equals_reference(embedding, noise):
    fused, reference = build_pair(embedding)
    inputs, targets = data()
    assert_same(
        run_with_gradients(fused, inputs, targets, noise), run_with_gradients(reference, inputs, targets, noise)
    )


@pytest.mark.parametrize("used_output", ["rates", "behavior", "units"])
def test_gradients_when_the_loss_reads_one_output(used_output):
    fused, reference = build_pair("mlp")
    inputs, _ = data(seed=2)
    gradients = []
    for model in (fused, reference):
        model.zero_grad()
        getattr(model(inputs, noise=False), used_output).square().mean().backward()
        gradients.append({name: parameter.grad for name, parameter in model.named_parameters()})
    for name, expected in gradients[1].items():
        if expected is None or not expected.any():
            assert gradients[0][name] is None or not gradients[0][name].any(), name
        else:
            assert relative_error(gradients[0][name], expected) < TOLERANCE, name


def test_fused_path_equals_reference_with_relu():
    fused, reference = build_pair("linear", activation="relu")
    inputs, targets = data(seed=1)
    assert_same(run_with_gradients(fused, inputs, targets, True), run_with_gradients(reference, inputs, targets, True))


def test_batch_split_across_threads_matches_one_thread(monkeypatch):
    fused, _ = build_pair("linear")
    inputs, targets = data(batch=9)
    single = run_with_gradients(fused, inputs, targets, True)
    monkeypatch.setattr(cpu_threads, "MIN_TRIALS_PER_THREAD", 2)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert len(cpu_threads.batch_chunks(9, torch.device("cpu"))) == 2
        split = run_with_gradients(fused, inputs, targets, True)
    finally:
        torch.set_num_threads(threads)
    assert torch.get_num_threads() == threads
    assert_same(split, single)


def test_no_grad_forward_matches_and_second_backward_is_refused():
    fused, _ = build_pair("linear")
    inputs, _ = data()
    with torch.no_grad():
        without_graph = fused(inputs, noise=False)
    with_graph = fused(inputs, noise=False)
    torch.testing.assert_close(with_graph.rates, without_graph.rates, rtol=0, atol=0)
    with_graph.rates.sum().backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="one backward pass"):
        with_graph.rates.sum().backward()


def test_drive_row_sums_sum_rows_by_table_row():
    generator = torch.Generator().manual_seed(0)
    step_rows = torch.randint(0, 5, (40,), generator=generator)
    step_rows[step_rows == 3] = 4  # a table row no step uses sums to zero
    values = torch.randn(40, 3, generator=generator)
    sums = recurrence.drive_row_sums(step_rows, 6, values.dtype) @ values
    torch.testing.assert_close(sums, torch.zeros(6, 3).index_add_(0, step_rows, values))
    assert sums[3].abs().sum() == 0 and sums[5].abs().sum() == 0


def test_buffered_softplus_is_within_a_rounding_of_torch_softplus():
    x = torch.cat([torch.linspace(-100, 100, 20001), torch.tensor([-16.0, 19.999, 20.0, 20.001, 89.0, 1e30])])
    buffered = ACTIVATIONS["softplus"].rate(x, out=torch.empty_like(x))
    exact = torch.nn.functional.softplus(x)
    assert ((buffered - exact).abs() <= 1e-6 * exact.clamp_min(1.0)).all()
    torch.testing.assert_close(buffered, exact, rtol=2e-7, atol=1e-7)
    assert torch.equal(buffered[x > 20], x[x > 20])
