"""Fixed points of a rate network under a constant input, as FixedPointFinder (Golub & Sussillo
2018) finds them for any map h -> F(u, h).

For a constant input u the network's one-step map in its state x is

    F(x) = (1 - alpha) x + alpha (W_rec f(x) + W_in e(u) + b),

and a fixed point is an x* with F(x*) = x*. From many seeded starts, q(x) = 1/2 |F(x) - x|^2 is
minimised with Adam (FixedPointFinder's default optimiser); starts whose q comes close to 0
are polished with Newton steps on F(x) - x = 0 (a plain minimiser stalls at q ~ 1e-8 on a
stiff map; Newton reaches machine precision in a few steps), kept if q < `tolerance`, and
deduplicated (states closer than `unique_distance` are one point). Minima of q above the
tolerance (slow points) are dropped.

The stability of a fixed point is read from the eigenvalues of the Jacobian dF/dx at it: stable
when every |lambda| < 1 (the map is a contraction there). `continuous_eigenvalues` turns them
into the eigenvalues of the continuous-time linearisation, (lambda - 1) / dt, in 1/s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from eirnn.choices import ACTIVATIONS
from eirnn.model.prepared_inputs import prepare_inputs

Map = Callable[[torch.Tensor], torch.Tensor]  # [S, N] -> [S, N], float64

ADAM_STEPS = 1500
ADAM_LEARNING_RATE = 0.05
NEWTON_STEPS = 20
CHECK_EVERY = 50
NEWTON_FROM_Q = 1e-3  # starts with q below this after Adam are polished with Newton steps
Q_TOLERANCE = 1e-12
UNIQUE_DISTANCE = 1e-4


@dataclass
class FixedPoints:
    """Fixed points of one map: `states` [P, N], `q` [P], `eigenvalues` [P, N] (complex, of the
    Jacobian of the map, largest modulus first), `stable` bool [P]; P may be 0."""

    states: np.ndarray
    q: np.ndarray
    eigenvalues: np.ndarray
    stable: np.ndarray

    @property
    def n_points(self) -> int:
        return len(self.states)

    @property
    def n_stable(self) -> int:
        return int(self.stable.sum())


def map_jacobians(step: Map, states: torch.Tensor) -> torch.Tensor:
    """dF/dx [S, N, N] at each row of `states` [S, N]."""
    return torch.func.vmap(torch.func.jacrev(lambda x: step(x[None])[0]))(states)


def _minimise_q(step: Map, starts: torch.Tensor, n_steps: int, learning_rate: float) -> torch.Tensor:
    states = starts.clone().requires_grad_(True)
    optimiser = torch.optim.Adam([states], lr=learning_rate)
    for index in range(n_steps):
        optimiser.zero_grad()
        # the sum of independent q's: each start's gradient is its own q's gradient
        q = 0.5 * (step(states) - states).pow(2).sum(-1)
        if index % CHECK_EVERY == 0 and bool((q < NEWTON_FROM_Q).all()):
            break  # every start is close enough for Newton steps to finish
        q.sum().backward()
        optimiser.step()
    return states.detach()


def _newton(step: Map, states: torch.Tensor, n_steps: int) -> torch.Tensor:
    """`n_steps` Newton steps. A step is a deterministic function of the states alone, so once the
    states repeat bit for bit (converged to a point, or flipping between neighbouring floats) the
    rest of the sequence is known: the state `n_steps` would reach is returned without the steps."""
    identity = torch.eye(states.shape[1], dtype=states.dtype)
    visited = [states]
    for _ in range(n_steps):
        with torch.no_grad():
            residual = step(states) - states
        jacobian = map_jacobians(step, states) - identity
        solved = torch.linalg.lstsq(jacobian, -residual[..., None]).solution[..., 0]
        states = states + torch.nan_to_num(solved)
        for first, earlier in enumerate(visited):
            if _same_bits(earlier, states):
                period = len(visited) - first
                return visited[first + (n_steps - first) % period]
        visited.append(states)
    return states


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.equal(a.view(torch.int64), b.view(torch.int64))


def speed(step: Map, states: torch.Tensor) -> torch.Tensor:
    """q = 1/2 |F(x) - x|^2 per row of `states`."""
    with torch.no_grad():
        return 0.5 * (step(states) - states).pow(2).sum(-1)


def _deduplicate(states: np.ndarray, q: np.ndarray, unique_distance: float) -> np.ndarray:
    """Indices of the lowest-q representative of each cluster of states."""
    kept: list[int] = []
    for index in np.argsort(q):
        if all(np.linalg.norm(states[index] - states[other]) > unique_distance for other in kept):
            kept.append(int(index))
    return np.asarray(sorted(kept), dtype=np.int64)


def find_fixed_points(
    step: Map,
    starts: torch.Tensor | np.ndarray,
    *,
    tolerance: float = Q_TOLERANCE,
    unique_distance: float = UNIQUE_DISTANCE,
    adam_steps: int = ADAM_STEPS,
    learning_rate: float = ADAM_LEARNING_RATE,
) -> FixedPoints:
    """Fixed points of `step` (a map [S, N] -> [S, N] in float64) reached from `starts` [S, N].

    Returns the distinct fixed points with q < `tolerance`, their Jacobian eigenvalues (largest
    modulus first) and whether each is stable (every |eigenvalue| < 1).

    Examples
    --------
    The map x -> tanh(2x) has two stable fixed points and an unstable one at 0 (slope 2):

    >>> import numpy as np
    >>> import torch
    >>> from eirnn.fixed_points import find_fixed_points
    >>> points = find_fixed_points(lambda x: torch.tanh(2.0 * x), np.array([[-1.0], [0.01], [1.0]]))
    >>> points.states.round(4).ravel(), points.stable, points.n_stable
    (array([-0.9575,  0.    ,  0.9575]), array([ True, False,  True]), 2)
    >>> np.abs(points.eigenvalues).round(4).ravel()  # |slope| at each point: < 1 is stable
    array([0.1664, 2.    , 0.1664])

    A fitted network's map under one condition's mean input (`network_map`) is searched from
    states the network visits (`simulate_states`, `seeded_starts`) in the same way.
    """
    starts = torch.as_tensor(np.asarray(starts, dtype=np.float64))
    states = _minimise_q(step, starts, adam_steps, learning_rate)
    near = speed(step, states) < NEWTON_FROM_Q
    if near.any():
        states[near] = _newton(step, states[near], NEWTON_STEPS)
    q = speed(step, states).numpy()
    found = np.flatnonzero(q < tolerance)
    unique = found[_deduplicate(states.numpy()[found], q[found], unique_distance)]
    n_units = starts.shape[1]
    if not len(unique):
        return FixedPoints(np.zeros((0, n_units)), np.zeros(0), np.zeros((0, n_units), complex), np.zeros(0, bool))
    points = states[unique]
    eigenvalues = torch.linalg.eigvals(map_jacobians(step, points)).numpy()
    eigenvalues = np.take_along_axis(eigenvalues, np.argsort(-np.abs(eigenvalues), axis=1), axis=1)
    return FixedPoints(points.numpy(), q[unique], eigenvalues, np.abs(eigenvalues).max(axis=1) < 1.0)


def continuous_eigenvalues(map_eigenvalues: np.ndarray, dt_s: float) -> np.ndarray:
    """Eigenvalues (1/s) of the continuous-time linearisation tau dx/dt = -x + W f(x) + input
    whose Euler step of `dt_s` seconds has the map eigenvalues given."""
    return (np.asarray(map_eigenvalues) - 1.0) / dt_s


def input_drive(model: torch.nn.Module, input_vectors: np.ndarray) -> torch.Tensor:
    """W_in e(u) + b [..., N] (float64, unit order) for input vectors u [..., n_inputs]."""
    with torch.no_grad():
        u = torch.as_tensor(np.asarray(input_vectors, dtype=np.float32), device=model.h0.device)
        flat = u.reshape(-1, u.shape[-1])
        return model.input_projection(model.embedding(flat)).double().cpu().reshape(*u.shape[:-1], -1)


def network_map(model: torch.nn.Module, input_vector: np.ndarray) -> Map:
    """The one-step map F of a fitted `EIRNN` (noise off) under the constant input u, in the
    units' state x (unit order), float64."""
    weight = model.effective_recurrent_weights().detach().double().cpu()
    drive = input_drive(model, input_vector)
    alpha, activation = float(model.alpha), model.activation

    def step(states: torch.Tensor) -> torch.Tensor:
        return (1 - alpha) * states + alpha * (ACTIVATIONS[activation].rate(states) @ weight.T + drive)

    return step


def simulate_states(model: torch.nn.Module, inputs: np.ndarray) -> torch.Tensor:
    """States x [trials, T, N] (float64, unit order) of `model` for `inputs` [trials, T, n_inputs],
    noise off: x[1..T] from x[0] = h0, the states whose rates the model outputs."""
    weight = model.effective_recurrent_weights().detach().double().cpu()
    # each distinct input row through the embedding once, as the model's forward pass does
    # (`prepare_inputs`), not every trial and bin: the trials repeat a few input vectors
    distinct = prepare_inputs(torch.as_tensor(np.asarray(inputs, dtype=np.float32)))
    drives = input_drive(model, distinct.unique_inputs.numpy())[distinct.step_rows]
    alpha, activation = float(model.alpha), model.activation
    state = model.initial_state().detach().double().cpu().expand(len(inputs), -1)
    states = []
    for t in range(drives.shape[1]):
        state = (1 - alpha) * state + alpha * (ACTIVATIONS[activation].rate(state) @ weight.T + drives[:, t])
        states.append(state)
    return torch.stack(states, dim=1)


def seeded_starts(visited: torch.Tensor, n_starts: int, seed: int, noise_scale: float = 0.5) -> torch.Tensor:
    """`n_starts` states drawn from `visited` [T, N] (with replacement, seeded), each moved by
    Gaussian noise of `noise_scale` times the per-unit spread of the visited states (at least
    `noise_scale`): FixedPointFinder's starts, sampled from the trajectories."""
    generator = torch.Generator().manual_seed(seed)
    rows = torch.randint(len(visited), (n_starts,), generator=generator)
    scale = (
        noise_scale * visited.std(0).clamp_min(1.0) if len(visited) > 1 else torch.full_like(visited[0], noise_scale)
    )
    noise = torch.randn(n_starts, visited.shape[1], generator=generator, dtype=visited.dtype)
    return visited[rows] + noise * scale
