"""The fused recurrence's hand-written backward against numerical gradients (float64 gradcheck).

Each check differentiates one scalar, a fixed random weighting of the outputs, so one backward
pass gives the whole gradient, which gradcheck compares with central differences for every input
element. The fused Function frees its rates after its one backward pass, and gradcheck runs the
backward twice (to see that it is reproducible), so `Recomputed` runs forward and the fused
backward afresh for each backward pass gradcheck asks for.
"""

import pytest
import torch
from torch.func import functional_call

from eirnn.choices import ACTIVATIONS, EMBEDDINGS
from eirnn.model import create_model_from_data
from eirnn.model.recurrence import run_recurrence

BATCH, STEPS, N_UNITS, N_SCALED, N_OUTPUTS, TABLE_ROWS = 2, 4, 5, 3, 2, 3
OUTPUT_SETS = {"all": (0, 1, 2), "units": (0,), "rates": (1,), "readout": (2,)}


class Recomputed(torch.autograd.Function):
    """loss(*inputs), whose backward runs loss's forward again and then its (fused) backward."""

    @staticmethod
    def forward(ctx, loss, *inputs):
        ctx.loss = loss
        ctx.save_for_backward(*inputs)
        with torch.no_grad():
            return loss(*inputs)

    @staticmethod
    def backward(ctx, grad):
        inputs = [value.detach().requires_grad_() for value in ctx.saved_tensors]
        with torch.enable_grad():
            # an input that only feeds outputs left out of the loss gets None from the fused backward
            gradients = torch.autograd.grad(ctx.loss(*inputs), inputs, allow_unused=True, materialize_grads=True)
        return (None, *(grad * gradient for gradient in gradients))


def check_gradients(loss, inputs) -> bool:
    return torch.autograd.gradcheck(lambda *values: Recomputed.apply(loss, *values), tuple(inputs))


def weighted_sum(outputs, weights, used):
    """A scalar from the outputs in `used`, each weighted elementwise by a fixed random tensor."""
    return sum((outputs[index] * weights[index]).sum() for index in used)


def recurrence_inputs(generator):
    def draw(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=generator, dtype=torch.float64)).requires_grad_()

    return {
        "x0": draw(BATCH, N_UNITS, scale=0.5),
        "weight": draw(N_UNITS, N_UNITS, scale=0.3),
        "drive_table": draw(TABLE_ROWS, N_UNITS, scale=0.5),
        "rate_gain": (1.0 + torch.rand(N_SCALED, generator=generator, dtype=torch.float64)).requires_grad_(),
        "readout": draw(N_UNITS, N_OUTPUTS),
    }


@pytest.mark.parametrize("used", OUTPUT_SETS.values(), ids=OUTPUT_SETS.keys())
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("noise_std", [0.0, 0.2], ids=["no_noise", "noise"])
def test_fused_recurrence_gradients_match_finite_differences(activation, used, noise_std):
    generator = torch.Generator().manual_seed(1)
    inputs = recurrence_inputs(generator)
    step_rows = torch.randint(0, TABLE_ROWS, (STEPS * BATCH,), generator=generator)
    output_shapes = [(STEPS, BATCH, N_UNITS), (BATCH, STEPS, N_SCALED), (BATCH, STEPS, N_OUTPUTS)]
    weights = [torch.randn(shape, generator=generator, dtype=torch.float64) for shape in output_shapes]

    def loss(x0, weight, drive_table, rate_gain, readout):
        outputs = run_recurrence(
            x0,
            weight,
            drive_table,
            step_rows,
            rate_gain,
            (readout,),
            # the same noise on every evaluation: a fresh generator with a fixed seed
            noise_std=noise_std,
            generator=torch.Generator().manual_seed(7),
            leak=0.5,
            activation=activation,
        )
        return weighted_sum(outputs, weights, used)

    assert check_gradients(loss, inputs.values())


def tiny_model(embedding: str, activation: str) -> torch.nn.Module:
    """3 E + 2 I recorded neurons (plus hidden units for a 2:1 E:I ratio), 3 inputs, 2 outputs."""
    model = create_model_from_data(
        n_classic=3,
        n_interneuron=2,
        n_inputs=3,
        n_outputs=2,
        ei_ratio=2.0,
        input_embed_type=embedding,
        input_embed_dim=4,
        attention_heads=2,
        attention_token_dim=4,
        activation=activation,
        seed=0,
    ).double()
    with torch.no_grad():
        # away from the initial values, which leave the gains at 1 and h0 uniform
        generator = torch.Generator().manual_seed(2)
        for parameter in model.parameters():
            parameter.add_(0.2 * torch.randn(parameter.shape, generator=generator, dtype=torch.float64))
    return model


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("embedding", EMBEDDINGS)
def test_model_gradients_match_finite_differences(embedding, activation):
    """Every parameter (raw W_rec, input embedding and projection, h0, gains, readout) through the
    model's forward with noise on: the fused backward plus autograd around it."""
    model = tiny_model(embedding, activation)
    generator = torch.Generator().manual_seed(3)
    # piecewise constant inputs: two input vectors per trial, as in a task with a cue
    levels = torch.rand(BATCH, 2, 3, generator=generator, dtype=torch.float64)
    inputs = model.prepare_inputs(levels.repeat_interleave(STEPS // 2, dim=1))
    names = [name for name, _ in model.named_parameters()]
    parameters = tuple(parameter.detach().clone().requires_grad_() for _, parameter in model.named_parameters())
    shapes = [(BATCH, STEPS, model.n_recorded), (BATCH, STEPS, model.n_outputs)]
    weights = [torch.randn(shape, generator=generator, dtype=torch.float64) for shape in shapes]

    def loss(*values):
        output = functional_call(
            model,
            dict(zip(names, values)),
            (inputs,),
            {"noise": True, "generator": torch.Generator().manual_seed(5)},
        )
        return weighted_sum((output.rates, output.behavior), weights, (0, 1))

    assert {"recurrent_weight_raw", "h0", "log_rate_gain", "readout.weight", "input_projection.weight"} <= set(names)
    assert check_gradients(loss, parameters)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_compiled_loops_compute_what_their_python_source_says(activation):
    """TorchScript compiles the per-step loops (`_compiled_loops`); run as plain Python, the same
    functions give the same numbers bit for bit."""
    from eirnn.model.recurrence import _adjoint_steps_using, _compiled_loops, _forward_steps_using

    generator = torch.Generator().manual_seed(7)
    steps, batch, n_units, n_scaled, table_rows = 6, 5, 7, 4, 3

    def random(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64)

    weight, drive_table, readout = random(n_units, n_units) / 3, random(table_rows, n_units), random(n_units, 2)
    gain, x0, noise = random(n_scaled).exp(), random(batch, n_units), random(steps, batch, n_units) / 10
    step_rows = torch.randint(0, table_rows, (steps, batch), generator=generator)
    grad_units, grad_rates = random(steps, batch, n_units), random(steps, batch, n_scaled)
    grad_readout = random(steps, batch, 2)
    plain_loops = (
        _forward_steps_using(ACTIVATIONS[activation].rate),
        _adjoint_steps_using(ACTIVATIONS[activation].multiply_by_slope),
    )
    results = []
    for forward, adjoint in (_compiled_loops(activation), plain_loops):
        rates = torch.empty(steps + 1, batch, n_units, dtype=torch.float64)
        outputs = [torch.empty(steps, batch, size, dtype=torch.float64) for size in (n_scaled, 2)]
        forward(x0, noise, rates, outputs, weight.t(), drive_table, step_rows, gain, [readout], 0.8)
        adjoints = torch.empty_like(rates)
        gradients = adjoint(adjoints, rates, grad_units, grad_rates, [grad_readout], weight, gain, [readout], 0.8)
        results.append([rates, *outputs, adjoints, *gradients])
    assert isinstance(_compiled_loops(activation)[0], torch.jit.ScriptFunction)
    for compiled, plain in zip(*results, strict=True):
        torch.testing.assert_close(compiled, plain, rtol=0, atol=0)
