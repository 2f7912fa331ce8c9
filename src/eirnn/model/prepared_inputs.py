"""Inputs as the recurrence reads them: the distinct rows of a data set's inputs (plus, with
perturbation trials, the distinct (input, perturbation) pairs) and the index of each trial's
steps into them, with the spike counts an inferred-state model reads its initial states from."""

from __future__ import annotations

import weakref
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import torch

from eirnn.model.cpu_threads import run_in_threads
from eirnn.model.recurrence import drive_row_sums


@dataclass(frozen=True)
class PerturbationRows:
    """The drive-table rows of inputs with perturbations: each row's task-input row and the
    strength of each perturbation channel (`eirnn.data.perturbations.Channel`) in it."""

    task_rows: torch.Tensor  # [R] long: row of unique_inputs
    strengths: torch.Tensor  # [R, C]
    channels: tuple[Any, ...]

    def to(self, device: torch.device | str) -> PerturbationRows:
        return PerturbationRows(self.task_rows.to(device), self.strengths.to(device), self.channels)


@dataclass(frozen=True)
class PreparedInputs:
    """Inputs [B, T, n_inputs] stored as their distinct rows plus an index.

    Task inputs are mostly piecewise constant, so a whole data set holds few distinct input
    vectors: the embedding and input projection then run once per distinct vector, not per step.
    `spikes` are the trials' spike counts for an inferred-state model's encoder, or None.
    With perturbations, a row of the drive table is a distinct (task input, perturbation
    strengths) pair (`perturbation`), and `step_rows` index those pairs.
    """

    unique_inputs: torch.Tensor  # [U, n_inputs]
    step_rows: torch.Tensor  # [B, T] long: row of the drive table for each trial and step
    spikes: torch.Tensor | None = None  # [B, T, n_recorded] float counts, dataset neuron order
    perturbation: PerturbationRows | None = None

    @property
    def n_rows(self) -> int:
        """Rows of the drive table."""
        return self.unique_inputs.shape[0] if self.perturbation is None else self.perturbation.task_rows.shape[0]

    @cached_property
    def time_major_rows(self) -> torch.Tensor:
        """step_rows as the recurrence reads them: [T * B], time-major."""
        return self.step_rows.t().reshape(-1)

    def row_sums(self, dtype: torch.dtype) -> torch.Tensor:
        """`drive_row_sums` of these inputs, built on first use: training reuses it every epoch."""
        cache = self.__dict__.setdefault("_row_sums", {})
        if dtype not in cache:
            cache[dtype] = drive_row_sums(self.time_major_rows, self.n_rows, dtype)
        return cache[dtype]

    @property
    def batch_size(self) -> int:
        return self.step_rows.shape[0]

    @property
    def n_steps(self) -> int:
        return self.step_rows.shape[1]

    def select(self, trial_index: torch.Tensor) -> PreparedInputs:
        spikes = None if self.spikes is None else self.spikes[trial_index]
        return PreparedInputs(self.unique_inputs, self.step_rows[trial_index], spikes, self.perturbation)

    def to(self, device: torch.device | str) -> PreparedInputs:
        spikes = None if self.spikes is None else self.spikes.to(device)
        perturbation = None if self.perturbation is None else self.perturbation.to(device)
        return PreparedInputs(self.unique_inputs.to(device), self.step_rows.to(device), spikes, perturbation)

    def dense(self) -> torch.Tensor:
        """The original inputs [B, T, n_inputs]."""
        rows = self.step_rows if self.perturbation is None else self.perturbation.task_rows[self.step_rows]
        return self.unique_inputs[rows]


def prepare_inputs(
    inputs: torch.Tensor, spikes: torch.Tensor | None = None, perturbation: Any = None
) -> PreparedInputs:
    """The distinct input rows of inputs [B, T, n_inputs], sorted as `torch.unique` sorts them,
    with the trials' spike counts [B, T, n_recorded] for an inferred-state model (or None) and
    their perturbations (`eirnn.data.perturbations.PerturbationSteps`, or None).

    A row equal to the one before it in its trial needs no lookup: only the rows where a trial's
    input changes (its first step and every step after a change) go through `torch.unique`, so
    the cost is one comparison pass over the inputs plus a sort of the changes, not a sort of
    every step (benchmarks/README.md has the timing). Model calls with raw inputs run it once per
    inputs tensor (`prepare_raw_inputs`).
    It runs on one torch thread: these memory-bound passes gain nothing from intra-op threads,
    whose barriers stall whenever another process holds a core.
    """
    if inputs.dim() != 3:
        raise ValueError(f"inputs must be [trials, time, n_inputs], got shape {tuple(inputs.shape)}")
    if spikes is not None and tuple(spikes.shape[:2]) != tuple(inputs.shape[:2]):
        raise ValueError(f"spikes {tuple(spikes.shape)} and inputs {tuple(inputs.shape)} differ in trials or bins")
    prepared = run_in_threads(lambda _: _distinct_rows(inputs.detach()), 1)[0]
    if perturbation is not None:
        prepared = _with_perturbation(prepared, perturbation)
    return prepared if spikes is None else replace(prepared, spikes=spikes.detach())


# the last raw inputs tensor a model was called with, its version counter, and their PreparedInputs
_last_raw_inputs: tuple[weakref.ref[torch.Tensor], int, PreparedInputs] | None = None


def prepare_raw_inputs(inputs: torch.Tensor) -> PreparedInputs:
    """`prepare_inputs(inputs)`, reused while a model is called with the same tensor again and it
    was not written to in between (its version counter is unchanged): a user's own training loop,
    `model(inputs)` every epoch, then prepares its inputs and the drive-table row sums once.

    Examples
    --------
    >>> import torch
    >>> inputs = torch.zeros(2, 5, 3)
    >>> prepare_raw_inputs(inputs) is prepare_raw_inputs(inputs)
    True
    >>> first = prepare_raw_inputs(inputs)
    >>> inputs[0, 2:] = 1.0  # written in place: prepared again
    >>> prepare_raw_inputs(inputs) is first, prepare_raw_inputs(inputs).n_rows
    (False, 2)
    """
    global _last_raw_inputs
    if _last_raw_inputs is not None:
        tensor, version, prepared = _last_raw_inputs
        if tensor() is inputs and version == inputs._version:
            return prepared
    prepared = prepare_inputs(inputs)
    _last_raw_inputs = (weakref.ref(inputs), inputs._version, prepared)
    return prepared


def _with_perturbation(prepared: PreparedInputs, perturbation: Any) -> PreparedInputs:
    """`prepared` with a drive-table row per distinct (task row, perturbation strengths) pair;
    `perturbation` is an `eirnn.data.perturbations.PerturbationSteps` of the same trials."""
    values = torch.as_tensor(perturbation.values, dtype=torch.float64, device=prepared.step_rows.device)
    if values.shape[:2] != prepared.step_rows.shape:
        raise ValueError(
            f"perturbation steps {tuple(values.shape)} do not match inputs {tuple(prepared.step_rows.shape)}"
        )
    keys = torch.cat([prepared.step_rows.unsqueeze(-1).to(values.dtype), values], dim=-1)
    pairs = run_in_threads(lambda _: _distinct_rows(keys), 1)[0]
    rows = PerturbationRows(
        pairs.unique_inputs[:, 0].long(),
        pairs.unique_inputs[:, 1:].to(prepared.unique_inputs.dtype),
        tuple(perturbation.channels),
    )
    return PreparedInputs(prepared.unique_inputs, pairs.step_rows, perturbation=rows)


def _distinct_rows(inputs: torch.Tensor) -> PreparedInputs:
    batch_size, n_steps, n_inputs = inputs.shape
    changes = torch.ones(batch_size, n_steps, dtype=torch.bool, device=inputs.device)
    torch.any(inputs[:, 1:] != inputs[:, :-1], dim=-1, out=changes[:, 1:])
    changes = changes.view(-1)
    unique, rows_of_changes = torch.unique(inputs.reshape(-1, n_inputs)[changes], dim=0, return_inverse=True)
    change_of_step = torch.cumsum(changes, 0).sub_(1)
    return PreparedInputs(unique, rows_of_changes[change_of_step].view(batch_size, n_steps))
