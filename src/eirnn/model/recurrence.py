"""Fused leaky-rate recurrence with its readouts and a hand-written adjoint pass.

Autograd through a Python loop over ~200 time steps records a dozen small nodes per step, and
every whole-trial tensor it allocates costs page faults; here the forward pass runs one
recurrent matmul per step on reused time-major buffers and the backward pass runs the adjoint
recursion, again one recurrent matmul per step.

Shapes: B trials, T steps, N units, n scaled units (the recorded neurons, units 0..n-1), U rows
of the drive table, K_k columns of readout k. `W` [N, N] is the recurrent matrix already scaled
by dt / tau, `drive` [U, N] a table of input drives (one row per distinct input vector, also
scaled by dt / tau), row(t) [B] picks each trial's row at step t, xi[t] [B, N] ~ N(0, 1).

Forward, from x[0] = x0 [B, N], with r[t] = f(x[t]) [B, N]:

    x[t+1] = leak * x[t] + r[t] @ W.T + drive[row(t)] + noise_std * xi[t]      t = 0..T-1
    units[t] = r[t] [B, N],  rates[t] = r[t, :, :n] * gain [B, n],  y_k[t] = r[t] @ V_k [B, K_k]
                                                                       (outputs for t = 1..T)

Backward. The gradient reaching r[t] from the outputs (t = 1..T; none reaches r[0]) is

    g[t] = dL/dunits[t] + [dL/drates[t] * gain, 0] + sum_k dL/dy_k[t] @ V_k.T        [B, N]

and the adjoint lambda[t] = dL/dx[t] [B, N] runs backwards from lambda[T] = f'(x[T]) * g[T]:

    lambda[t] = f'(x[t]) * (g[t] + lambda[t+1] @ W) + leak * lambda[t+1]          t = T-1..0

from which every gradient follows (sums over the B trials of the batch):

    dL/dx0    = lambda[0]                                                         [B, N]
    dL/dW     = sum_{t=0..T-1} lambda[t+1].T @ r[t]                               [N, N]
    dL/ddrive = S @ lambda[1..T],  S[u, (t, b)] = 1 where row(t)[b] = u           [U, N]
                (row u sums lambda[t+1][b] over the (t, b) it drives; `drive_row_sums`)
    dL/dgain  = sum_{t=1..T} sum_b dL/drates[t][b] * r[t][b, :n]                  [n]
    dL/dV_k   = sum_{t=1..T} r[t].T @ dL/dy_k[t]                                  [N, K_k]

The noise, the row indices and S get no gradient. Only the rates r are stored: both
nonlinearities' slopes are functions of r (softplus: f'(x) = sigmoid(x) = 1 - exp(-r); relu:
r > 0), so the states x live in two small per-step buffers, and the epoch streams one large
tensor fewer through memory each way. Any float dtype works (tests check float64 gradients
with `torch.autograd.gradcheck`, tests/test_recurrence_gradcheck.py).

The caller orders the units so that the n scaled ones come first. The outputs are computed per
step, while r[t] is in cache, into contiguous rows of time-major buffers, and handed out as
[B, T, K] views of them: no pass over the whole unit-rate tensor is needed to gather or
transpose them. Trials run in chunks on CPU threads (`eirnn.model.cpu_threads`), each chunk's
loop compiled by TorchScript so that it runs without the GIL (`_compiled_loops`); the large noise
and adjoint buffers are reused between calls (`eirnn.model.workspace`).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable

import torch

from eirnn.choices import ACTIVATIONS
from eirnn.model.cpu_threads import batch_chunks, map_chunks
from eirnn.model.noise import fill_standard_normal
from eirnn.model.workspace import WORKSPACE


def drive_row_sums(step_rows: torch.Tensor, n_table_rows: int, dtype: torch.dtype) -> torch.Tensor:
    """Sparse 0/1 matrix S [U, T * B] (CSR) with S[u, i] = 1 where step_rows[i] = u, so that
    S @ X sums the rows of X [T * B, N] by drive-table row: the gradient of the drive table.
    It depends on the inputs only, so callers that run the same inputs often build it once.
    (One sparse matmul is several times faster than index_add_, which reads an index per
    element; benchmarks/README.md has the numbers.)"""
    counts = torch.bincount(step_rows, minlength=n_table_rows)
    # 32-bit indices, which the sparse kernels take without converting them on every product
    row_starts = torch.cat([counts.new_zeros(1), counts.cumsum(0)]).int()
    columns = torch.argsort(step_rows, stable=True).int()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            row_starts,
            columns,
            torch.ones(columns.shape, dtype=dtype, device=step_rows.device),
            size=(n_table_rows, step_rows.numel()),
            check_invariants=False,
        )


def _forward_steps_using(rate_of: Callable[..., torch.Tensor]) -> Callable[..., None]:
    """The forward loop for the activation whose rate function is `rate_of` (see `_compiled_loops`)."""

    def forward_steps(
        initial_state: torch.Tensor,
        noise: torch.Tensor | None,
        rates: torch.Tensor,
        outputs: list[torch.Tensor],
        weight_t: torch.Tensor,
        drive_table: torch.Tensor,
        step_rows: torch.Tensor,
        rate_gain: torch.Tensor,
        readout_weights: list[torch.Tensor],
        leak: float,
    ) -> None:
        """initial_state [b, N]; noise [T, b, N] (scaled) or None; rates [T + 1, b, N];
        step_rows [T, b]; outputs [T, b, K]: the scaled rates, then one per readout weight."""
        n_scaled = rate_gain.shape[0]
        rate_steps, row_steps = rates.unbind(0), step_rows.unbind(0)
        scaled_rate_sources = rates[1:, :, :n_scaled].unbind(0)
        scaled_rate_steps = outputs[0].unbind(0)
        readout_steps = [output.unbind(0) for output in outputs[1:]]
        # x[t] and x[t+1] in two small buffers that stay in cache, swapped every step; the drive
        # is gathered straight into x[t+1] rather than in a pass over a whole [T, B, N] buffer
        state, following = initial_state.clone(), torch.empty_like(initial_state)
        rate_of(state, out=rate_steps[0])
        for step in range(len(row_steps)):
            rate = rate_steps[step + 1]
            torch.index_select(drive_table, 0, row_steps[step], out=following)
            if noise is not None:
                following.add_(noise[step])
            following.add_(state, alpha=leak)
            following.addmm_(rate_steps[step], weight_t)
            rate_of(following, out=rate)
            torch.mul(scaled_rate_sources[step], rate_gain, out=scaled_rate_steps[step])
            for readout, readout_weight in zip(readout_steps, readout_weights):
                torch.mm(rate, readout_weight, out=readout[step])
            state, following = following, state

    return forward_steps


def _adjoint_steps_using(multiply_by_slope: Callable[..., None]) -> Callable[..., list[torch.Tensor | None]]:
    """The adjoint loop for the activation whose slope is applied by `multiply_by_slope`."""

    def adjoint_steps(
        adjoint: torch.Tensor,
        rates: torch.Tensor,
        grad_units: torch.Tensor | None,
        grad_rates: torch.Tensor | None,
        grad_readouts: list[torch.Tensor | None],
        weight: torch.Tensor,
        rate_gain: torch.Tensor,
        readout_weights: list[torch.Tensor],
        leak: float,
    ) -> list[torch.Tensor | None]:
        """Fills adjoint[t] with dL/dx[t] for t = 0..T, from the time-major gradients of the unit
        rates and the scaled rates [T, b, N or n] and of the readouts [T, b, K]; returns the
        gradients of W, of the rate gain and of the readout weights (None where their output got
        no gradient), summed over these trials."""
        last = rates.shape[0] - 1
        n_scaled = rate_gain.shape[0]
        adjoint_steps, rate_steps = adjoint.unbind(0), rates.unbind(0)
        # per trial, summed at the end: one fused multiply-add per step
        gain_grad_per_trial = rate_gain.new_zeros(adjoint.shape[1], n_scaled)
        readout_grads = [weight.new_zeros(v.shape) for v in readout_weights]
        weight_grad = weight.new_zeros(weight.shape)
        slope = rates.new_empty(rates.shape[1:])
        for step in range(last, -1, -1):
            current, rate = adjoint_steps[step], rate_steps[step]
            if step < last:
                torch.mm(adjoint_steps[step + 1], weight, out=current)
                # dL/dW = sum_t lambda[t+1]^T r[t], while both are in cache: as one product after
                # the loop it read both whole tensors back from memory
                weight_grad.addmm_(adjoint_steps[step + 1].t(), rate)
            else:
                current.zero_()
            if step > 0:  # r[0] is no output
                if grad_rates is not None:
                    current[:, :n_scaled].addcmul_(grad_rates[step - 1], rate_gain)
                    gain_grad_per_trial.addcmul_(grad_rates[step - 1], rate[:, :n_scaled])
                for grad_readout, readout_weight, readout_grad in zip(grad_readouts, readout_weights, readout_grads):
                    if grad_readout is not None:
                        current.addmm_(grad_readout[step - 1], readout_weight.t())
                        readout_grad.addmm_(rate.t(), grad_readout[step - 1])
                if grad_units is not None:
                    current.add_(grad_units[step - 1])
            multiply_by_slope(current, rate, slope)
            if step < last:
                current.add_(adjoint_steps[step + 1], alpha=leak)
        gradients: list[torch.Tensor | None] = [weight_grad, None if grad_rates is None else gain_grad_per_trial.sum(0)]
        for grad_readout, readout_grad in zip(grad_readouts, readout_grads):
            gradients.append(None if grad_readout is None else readout_grad)
        return gradients

    return adjoint_steps


@functools.cache
def _compiled_loops(activation: str) -> tuple[Callable[..., None], Callable[..., list[torch.Tensor | None]]]:
    """The forward and adjoint loops for one activation, compiled by TorchScript.

    As Python loops, each of the ~10 small ops of a step returned to the interpreter, whose lock
    (the GIL) the other chunk's thread needed for its own next op: two threads took turns rather
    than running side by side. Compiled, a chunk's whole loop runs without the GIL
    (benchmarks/README.md has the A/B). torch 2.13 marks `torch.jit.script` deprecated; its
    successor, torch.compile, runs a step's kernels from Python again and compiled slower code
    for this loop after minutes.
    """
    nonlinearity = ACTIVATIONS[activation]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated", category=DeprecationWarning)
        return (
            torch.jit.script(_forward_steps_using(nonlinearity.rate)),
            torch.jit.script(_adjoint_steps_using(nonlinearity.multiply_by_slope)),
        )


class _FusedRecurrence(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        x0: torch.Tensor,
        weight: torch.Tensor,
        drive_table: torch.Tensor,
        step_rows: torch.Tensor,
        row_sums: torch.Tensor,
        noise_std: float,
        generator: torch.Generator | None,
        leak: float,
        activation: str,
        rate_gain: torch.Tensor,
        *readout_weights: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        rates, outputs = _integrate(
            x0, weight, drive_table, step_rows, rate_gain, readout_weights, noise_std, generator, leak, activation
        )
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(weight, rate_gain, *readout_weights)
        ctx.rates, ctx.row_sums = rates, row_sums
        ctx.leak, ctx.activation = leak, activation
        return (rates[1:], *outputs)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_units: torch.Tensor | None, *grad_outputs: torch.Tensor | None):  # type: ignore[override]
        if ctx.rates is None:
            raise RuntimeError("the fused recurrence supports one backward pass per forward pass; run the model again")
        weight, rate_gain, *readout_weights = ctx.saved_tensors
        rates = ctx.rates
        ctx.rates = None
        n_units = rates.shape[-1]
        # the outputs are time-major in memory, and so are their gradients when the loss kept
        # that layout (the targets of `eirnn.training.make_targets` have it): then this is free
        grad_units = None if grad_units is None else grad_units.contiguous()
        grad_outputs = [None if grad is None else grad.transpose(0, 1).contiguous() for grad in grad_outputs]
        adjoint = WORKSPACE.take(tuple(rates.shape), rates)

        _, adjoint_steps = _compiled_loops(ctx.activation)
        grad_rates, *grad_readouts = grad_outputs

        def adjoint_chunk(chunk: slice) -> list[torch.Tensor | None]:
            return adjoint_steps(
                adjoint[:, chunk],
                rates[:, chunk],
                None if grad_units is None else grad_units[:, chunk],
                None if grad_rates is None else grad_rates[:, chunk],
                [None if grad is None else grad[:, chunk] for grad in grad_readouts],
                weight,
                rate_gain,
                readout_weights,
                ctx.leak,
            )

        chunk_grads = map_chunks(adjoint_chunk, batch_chunks(rates.shape[1], rates.device))
        step_adjoint = adjoint[1:].view(-1, n_units)
        grad_weight, *output_weight_grads = [
            None if grads[0] is None else torch.stack(grads).sum(0) for grads in zip(*chunk_grads)
        ]
        grad_table = ctx.row_sums @ step_adjoint
        grad_x0 = adjoint[0].clone()
        WORKSPACE.give_back(adjoint)
        return (grad_x0, grad_weight, grad_table, None, None, None, None, None, None, *output_weight_grads)


def _integrate(
    x0: torch.Tensor,
    weight: torch.Tensor,
    drive_table: torch.Tensor,
    step_rows: torch.Tensor,
    rate_gain: torch.Tensor,
    readout_weights: tuple[torch.Tensor, ...],
    noise_std: float,
    generator: torch.Generator | None,
    leak: float,
    activation: str,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Rates r[0..T] [T + 1, B, N] and the outputs as [B, T, K] views, all time-major in memory."""
    batch_size, n_units = x0.shape
    n_steps = step_rows.numel() // batch_size
    noise = None
    if noise_std > 0:
        noise = fill_standard_normal(WORKSPACE.take((n_steps, batch_size, n_units), x0), generator, std=noise_std)
    rates = x0.new_empty(n_steps + 1, batch_size, n_units)
    rows_by_step = step_rows.view(n_steps, batch_size)
    output_sizes = [rate_gain.shape[0], *(v.shape[1] for v in readout_weights)]
    outputs = [x0.new_empty(n_steps, batch_size, size) for size in output_sizes]
    weight_t = weight.t()

    forward_steps, _ = _compiled_loops(activation)

    def integrate_chunk(chunk: slice) -> None:
        forward_steps(
            x0[chunk],
            None if noise is None else noise[:, chunk],
            rates[:, chunk],
            [output[:, chunk] for output in outputs],
            weight_t,
            drive_table,
            rows_by_step[:, chunk],
            rate_gain,
            list(readout_weights),
            leak,
        )

    map_chunks(integrate_chunk, batch_chunks(batch_size, x0.device))
    if noise is not None:
        WORKSPACE.give_back(noise)
    return rates, [output.transpose(0, 1) for output in outputs]


def run_recurrence(
    x0: torch.Tensor,
    weight: torch.Tensor,
    drive_table: torch.Tensor,
    step_rows: torch.Tensor,
    rate_gain: torch.Tensor,
    readout_weights: tuple[torch.Tensor, ...] = (),
    *,
    noise_std: float,
    generator: torch.Generator | None,
    leak: float,
    activation: str,
    row_sums: torch.Tensor | None = None,
) -> tuple[torch.Tensor, ...]:
    """Integrate the network from x0 over T steps; returns
    - the unit rates r[1..T], time-major [T, B, N],
    - the scaled rates r[1..T, :, :n] * rate_gain, [B, T, n],
    - r[1..T] @ V for each readout weight V [N, K], [B, T, K];
    the last two are views of time-major memory (`.contiguous()` makes them batch-major).

    x0 [B, N]; weight [N, N] (scaled by dt / tau); drive_table [U, N] (scaled by dt / tau);
    step_rows [T * B] (time-major, long): row of `drive_table` driving trial b at step t;
    rate_gain [n]: gains of units 0..n-1; noise_std: standard deviation of the state noise per
    step (0 = none); row_sums: `drive_row_sums` of step_rows, built here when not given.
    """
    ACTIVATIONS[activation]  # an unknown name fails here, before any work
    if step_rows.numel() == 0:
        raise ValueError("inputs need at least one time step")
    differentiable = (x0, weight, drive_table, rate_gain, *readout_weights)
    if torch.is_grad_enabled() and any(tensor.requires_grad for tensor in differentiable):
        if row_sums is None:
            row_sums = drive_row_sums(step_rows, drive_table.shape[0], drive_table.dtype)
        return _FusedRecurrence.apply(
            x0,
            weight,
            drive_table,
            step_rows,
            row_sums,
            noise_std,
            generator,
            leak,
            activation,
            rate_gain,
            *readout_weights,
        )
    with torch.no_grad():
        rates, outputs = _integrate(
            x0, weight, drive_table, step_rows, rate_gain, readout_weights, noise_std, generator, leak, activation
        )
        return (rates[1:], *outputs)
