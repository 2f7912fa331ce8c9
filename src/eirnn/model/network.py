"""Excitatory/inhibitory leaky rate network (Dale's law) fitted to recorded neurons.

Units are E units first, then I units. Recorded E neuron k is E unit k and recorded I neuron k
is I unit k; any further units are hidden. With alpha = dt / tau and r = f(x):

    x[t+1] = (1 - alpha) x[t] + alpha (W_rec r[t] + W_in e(u[t]) + b) + sqrt(2 alpha) noise_scale xi[t]

from x[0] = h0, with outputs r[1..T] for T input steps. A recorded neuron's rate in Hz is its
unit's r times a learned positive gain.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from eirnn.choices import ACTIVATIONS, INITIAL_STATES, PERTURBATION_GAINS
from eirnn.model.embeddings import create_embedding
from eirnn.model.encoder import held_in_neurons
from eirnn.model.noise import fill_standard_normal
from eirnn.model.prepared_inputs import PreparedInputs, prepare_inputs, prepare_raw_inputs
from eirnn.model.recurrence import run_recurrence

# set_rate_scale floors the mean rate of silent neurons, whose gain would otherwise be log(0)
MIN_MEAN_RATE_HZ = 0.1


class ModelOutput:
    """What the network produced for a batch.

    rates [B, T, n_recorded]: Hz, in dataset neuron order; behavior [B, T, n_outputs] or None
    without a readout; units [B, T, n_units]: unit rates r in unit order; initial_state_offset
    [B, n_units] (unit order) or None: each trial's inferred x[0] - h0. `rates` and
    `behavior` are views of time-major memory (what the recurrence writes step by step);
    `.contiguous()` gives batch-major copies. `units` may be given
    as a function, called on first access: putting every unit rate in unit order is a pass over
    the largest tensor of the model, which training (reading rates and behaviour) never needs.
    """

    def __init__(
        self,
        rates: torch.Tensor,
        units: torch.Tensor | Callable[[], torch.Tensor],
        behavior: torch.Tensor | None,
        initial_state_offset: torch.Tensor | None = None,
    ) -> None:
        self.rates = rates
        self.behavior = behavior
        self.initial_state_offset = initial_state_offset
        self._units = units

    @property
    def units(self) -> torch.Tensor:
        if not isinstance(self._units, torch.Tensor):
            self._units = self._units()
        return self._units


def count_units(n_classic: int, n_interneuron: int, enforce_ratio: bool, ei_ratio: float) -> tuple[int, int]:
    """(n_E, n_I) units: the recorded ones, plus hidden ones so that n_E : n_I = ei_ratio."""
    if n_classic < 0 or n_interneuron < 0 or n_classic + n_interneuron == 0:
        raise ValueError(f"need recorded neurons, got n_classic={n_classic}, n_interneuron={n_interneuron}")
    if not enforce_ratio:
        return n_classic, n_interneuron
    if ei_ratio <= 0:
        raise ValueError(f"ei_ratio must be > 0, got {ei_ratio}")
    n_e = max(n_classic, math.ceil(ei_ratio * n_interneuron))
    return n_e, max(n_interneuron, math.ceil(n_e / ei_ratio))


def recorded_unit_index(
    n_classic: int, n_interneuron: int, n_e_units: int, neuron_labels: Sequence[int] | None
) -> list[int]:
    """Unit of each recorded neuron, in dataset order; labels are 0 (E) or 1 (I) per neuron,
    None meaning the first n_classic neurons are E and the rest I."""
    if neuron_labels is None:
        neuron_labels = [0] * n_classic + [1] * n_interneuron
    labels = [int(label) for label in neuron_labels]
    if sorted(set(labels)) not in ([], [0], [1], [0, 1]):
        raise ValueError(f"neuron_labels must be 0 (E) or 1 (I), got values {sorted(set(labels))}")
    if labels.count(0) != n_classic or labels.count(1) != n_interneuron:
        raise ValueError(
            f"neuron_labels has {labels.count(0)} E and {labels.count(1)} I neurons, "
            f"expected n_classic={n_classic} and n_interneuron={n_interneuron}"
        )
    next_unit = [0, n_e_units]
    units = []
    for label in labels:
        units.append(next_unit[label])
        next_unit[label] += 1
    return units


def balanced_dale_magnitudes(n_e: int, n_i: int, spectral_radius: float, self_connections: bool) -> torch.Tensor:
    """Non-negative raw weights [N, N] whose Dale-signed matrix is balanced, with the set radius.

    As in PsychRNN, each row's inhibitory weights are scaled so that their sum equals the row's
    excitatory sum: every unit starts with as much inhibition as excitation.
    """
    n_units = n_e + n_i
    magnitudes = torch.randn(n_units, n_units).abs()
    if not self_connections:
        magnitudes.fill_diagonal_(0.0)
    if n_e and n_i:
        excitation = magnitudes[:, :n_e].sum(1, keepdim=True)
        inhibition = magnitudes[:, n_e:].sum(1, keepdim=True).clamp_min(1e-12)
        magnitudes[:, n_e:] *= excitation / inhibition
    signs = torch.cat([torch.ones(n_e), -torch.ones(n_i)])
    radius = torch.linalg.eigvals((magnitudes * signs).double()).abs().max().item()
    return magnitudes * (spectral_radius / radius) if radius > 0 else magnitudes


def resolve_device(device: str | torch.device) -> torch.device:
    """ "auto" is CUDA when torch finds a GPU, else the CPU; asking for CUDA without one is refused."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device: {str(device)!r} asked for, but torch finds no CUDA device")
    return torch.device(device)


def fixed_perturbation_gain() -> None:
    """`perturbation_gain` "fixed": no parameter, a perturbation drives its units by its strength.

    Examples
    --------
    >>> from eirnn.choices import PERTURBATION_GAINS
    >>> PERTURBATION_GAINS["fixed"]() is None
    True
    """
    return None


def learned_perturbation_gain() -> nn.Parameter:
    """`perturbation_gain` "learned": the log gains onto E and onto I units, starting at gain 1.

    Examples
    --------
    >>> from eirnn.choices import PERTURBATION_GAINS
    >>> PERTURBATION_GAINS["learned"]().shape
    torch.Size([2])
    """
    return nn.Parameter(torch.zeros(2))


class EIRNN(nn.Module):
    """Dale's-law leaky rate RNN; see the module docstring for the equations.

    `hparams` holds every constructor argument (JSON-serialisable): `EIRNN(**model.hparams)`
    rebuilds the same architecture, and with the same `seed` the same initial weights.
    """

    def __init__(
        self,
        n_classic: int,
        n_interneuron: int,
        n_inputs: int,
        enforce_ratio: bool = True,
        ei_ratio: float = 4.0,
        input_embed_dim: int = 56,
        input_embed_type: str = "attention",
        attention_heads: int = 4,
        learnable_h0: bool = True,
        h0_init: float = 0.1,
        tau: float = 50.0,
        dt: float = 25.0,
        noise_scale: float = 0.1,
        n_outputs: int = 0,
        activation: str = "softplus",
        spectral_radius: float = 1.0,
        neuron_labels: Sequence[int] | None = None,
        device: str = "cpu",
        seed: int | None = None,
        self_connections: bool = False,
        attention_token_dim: int = 16,
        initial_state: str = "shared",
        encoder_hidden: int = 32,
        heldout_neurons: Sequence[int] | None = None,
        forward_bins: int = 0,
        perturbation_gain: str = "fixed",
    ) -> None:
        super().__init__()
        self.hparams: dict[str, Any] = {
            name: value for name, value in locals().items() if name not in ("self", "__class__")
        }
        self.hparams["neuron_labels"] = None if neuron_labels is None else [int(label) for label in neuron_labels]
        self.hparams["device"] = str(device)
        self.hparams["heldout_neurons"] = None if heldout_neurons is None else [int(i) for i in heldout_neurons]
        # looked up first, so that an unknown name fails before anything is built
        build_encoder, perturbation_log_gain = INITIAL_STATES[initial_state], PERTURBATION_GAINS[perturbation_gain]
        self.nonlinearity = ACTIVATIONS[activation]
        if not 0 < dt <= tau:
            raise ValueError(f"need 0 < dt <= tau for stable leaky integration, got dt={dt}, tau={tau}")
        if n_outputs < 0 or n_inputs < 1:
            raise ValueError(f"need n_inputs >= 1 and n_outputs >= 0, got {n_inputs} and {n_outputs}")

        self.n_e, self.n_i = count_units(n_classic, n_interneuron, enforce_ratio, ei_ratio)
        if n_outputs and not self.n_e:
            raise ValueError("a behaviour readout reads E units, but the network has none")
        self.n_units = self.n_e + self.n_i
        self.n_inputs = n_inputs
        self.n_outputs = n_outputs
        self.alpha = dt / tau
        self.noise_std = math.sqrt(2 * self.alpha) * noise_scale
        self.activation = activation
        units = recorded_unit_index(n_classic, n_interneuron, self.n_e, neuron_labels)
        self._register_unit_maps(units, self_connections)

        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            self.embedding = create_embedding(
                input_embed_type, n_inputs, input_embed_dim, heads=attention_heads, token_dim=attention_token_dim
            )
            self.input_projection = nn.Linear(input_embed_dim, self.n_units)
            self.recurrent_weight_raw = nn.Parameter(
                balanced_dale_magnitudes(self.n_e, self.n_i, spectral_radius, self_connections)
            )
            self.readout = nn.Linear(self.n_e, n_outputs) if n_outputs else None
            # built last, so that a shared-state model draws exactly the weights it always drew
            held_in = held_in_neurons(len(units), heldout_neurons)
            self.encoder = build_encoder(held_in, self.n_units, encoder_hidden, forward_bins)
        self._register_shared_state(float(h0_init), learnable_h0)
        # Hz per unit of r of each recorded neuron; the drive per unit of perturbation strength
        # onto E and onto I units (None: fixed at 1)
        self.log_rate_gain = nn.Parameter(torch.zeros(len(units)))
        self.register_parameter("log_perturbation_gain", perturbation_log_gain())
        self.to(resolve_device(device))

    def _register_shared_state(self, h0_init: float, learnable: bool) -> None:
        """The shared initial state h0 [N]: a parameter, or a fixed buffer."""
        h0 = torch.full((self.n_units,), h0_init)
        if learnable:
            self.h0 = nn.Parameter(h0)
        else:
            self.register_buffer("h0", h0)

    def _register_unit_maps(self, units: list[int], self_connections: bool) -> None:
        """Dale signs, E/I masks, the recorded neurons' units and the recurrence's unit order.
        They follow from hparams, so checkpoints hold only learned values."""
        is_inhibitory = torch.arange(self.n_units) >= self.n_e
        signs = 1.0 - 2.0 * is_inhibitory.float()
        allowed = torch.ones(self.n_units, self.n_units)
        if not self_connections:
            allowed.fill_diagonal_(0.0)
        self.register_buffer("dale_signs", allowed * signs, persistent=False)
        self.register_buffer("e_mask", ~is_inhibitory, persistent=False)
        self.register_buffer("i_mask", is_inhibitory, persistent=False)
        self.register_buffer("recorded_units", torch.tensor(units, dtype=torch.long), persistent=False)
        # The recurrence runs with the units reordered: recorded neurons first, in dataset order,
        # then the hidden units. Recorded rates are then a leading slice of the unit rates, read
        # out per step at no cost, instead of a gather over every trial, step and unit.
        recorded = set(units)
        internal_order = units + [unit for unit in range(self.n_units) if unit not in recorded]
        self.register_buffer("internal_order", torch.tensor(internal_order, dtype=torch.long), persistent=False)
        self.register_buffer("unit_order", torch.argsort(self.internal_order), persistent=False)

    @property
    def n_recorded(self) -> int:
        return self.recorded_units.numel()

    @property
    def rate_gain(self) -> torch.Tensor:
        """Hz per unit of r, per recorded neuron (positive)."""
        return self.log_rate_gain.exp()

    def effective_recurrent_weights(self) -> torch.Tensor:
        """W_rec [N, N]: |W_raw| signed by the presynaptic (column) unit, zero diagonal."""
        return self.recurrent_weight_raw.abs() * self.dale_signs

    def input_weights(self) -> torch.Tensor:
        """W_in [N, input_embed_dim]."""
        return self.input_projection.weight

    def initial_state(self) -> torch.Tensor:
        """h0 = x[0], [N]."""
        return self.h0

    def readout_weights(self) -> torch.Tensor | None:
        """W_out [n_outputs, n_E], or None without a readout."""
        return None if self.readout is None else self.readout.weight

    def set_rate_scale(self, mean_rates_hz: torch.Tensor | Sequence[float]) -> None:
        """Set each recorded neuron's gain so that its unit at the initial state h0 fires at the
        neuron's mean rate (Hz, dataset order): training starts at the data's rate scale."""
        mean = torch.as_tensor(mean_rates_hz, dtype=self.h0.dtype, device=self.h0.device)
        if mean.shape != (self.n_recorded,):
            raise ValueError(f"mean_rates_hz must have shape ({self.n_recorded},), got {tuple(mean.shape)}")
        with torch.no_grad():
            initial_rate = self.nonlinearity.rate(self.h0[self.recorded_units]).clamp_min(1e-6)
            self.log_rate_gain.copy_((mean.clamp_min(MIN_MEAN_RATE_HZ) / initial_rate).log())

    @property
    def infers_initial_state(self) -> bool:
        return self.encoder is not None

    def prepare_inputs(
        self, inputs: torch.Tensor, spikes: torch.Tensor | None = None, perturbation: Any = None
    ) -> PreparedInputs:
        """Compute once per data set and pass to forward instead of the raw inputs (forward
        accepts raw inputs too, at the cost of one `prepare_inputs` per call). `spikes`
        [B, T, n_recorded] (counts per bin) are what an inferred-state model infers each trial's
        x[0] from (a shared-state model ignores them); `perturbation`: the trials'
        `PerturbationSteps` (`eirnn.data.perturbations.perturbation_steps`), or None."""
        return prepare_inputs(inputs, spikes if self.infers_initial_state else None, perturbation)

    def perturbation_drive(self, channels: Sequence[Any]) -> torch.Tensor:
        """[channels, N] in unit order: the drive of each perturbation channel per unit of its
        strength, +1 (activation) or -1 (inactivation) on the targeted units, 0 elsewhere; with
        perturbation_gain "learned", times the learned gain of the unit's population (E or I)."""
        drive = torch.zeros(len(channels), self.n_units, dtype=self.h0.dtype, device=self.h0.device)
        for row, channel in enumerate(channels):
            if channel.target == "neurons":
                neurons = torch.as_tensor(channel.neurons, dtype=torch.long, device=drive.device)
                drive[row, self.recorded_units[neurons]] = channel.sign
            else:
                drive[row] = channel.sign * (self.e_mask if channel.target == "E" else self.i_mask)
        if self.log_perturbation_gain is None:
            return drive
        gain = self.log_perturbation_gain.exp()
        return drive * torch.where(self.i_mask, gain[1], gain[0])

    def draw_noise(self, batch_size: int, n_steps: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """xi [B, T, N] ~ N(0, 1) in unit order: the noise forward(noise=True) draws from the same
        generator state (forward draws it in its internal unit order, time-major)."""
        buffer = torch.empty(n_steps, batch_size, self.n_units, device=self.h0.device, dtype=self.h0.dtype)
        return fill_standard_normal(buffer, generator).index_select(-1, self.unit_order).transpose(0, 1)

    def uses_noise(self, noise: bool | None) -> bool:
        """noise=None means on in training mode, off in eval mode."""
        wanted = self.training if noise is None else noise
        return wanted and self.noise_std > 0

    def forward(
        self,
        inputs: torch.Tensor | PreparedInputs,
        noise: bool | None = None,
        generator: torch.Generator | None = None,
    ) -> ModelOutput:
        """Run T steps for inputs [B, T, n_inputs] (or their PreparedInputs); outputs are taken
        after each step, r[1..T]. noise=None: on in training mode, off in eval mode; `generator`
        draws the noise (see draw_noise). An inferred-state model starts each trial from
        h0 + the encoder's offset when the PreparedInputs carry spikes, else from the shared h0.
        Raw inputs are prepared on the first call and reused while the same tensor comes back
        unchanged (`prepare_raw_inputs`)."""
        prepared = inputs if isinstance(inputs, PreparedInputs) else prepare_raw_inputs(inputs)
        if prepared.unique_inputs.shape[-1] != self.n_inputs:
            raise ValueError(
                f"inputs have {prepared.unique_inputs.shape[-1]} channels, the model expects {self.n_inputs}"
            )
        order = self.internal_order
        weight = (self.alpha * self.effective_recurrent_weights())[order][:, order]
        task_drive = self.input_projection(self.embedding(prepared.unique_inputs))
        if prepared.perturbation is not None:
            rows = prepared.perturbation
            # control rows add exactly 0: their drive is the task drive, bit for bit
            task_drive = task_drive[rows.task_rows] + rows.strengths @ self.perturbation_drive(rows.channels)
        drive_table = self.alpha * task_drive[:, order]
        readout_weights: tuple[torch.Tensor, ...] = ()
        if self.readout is not None:
            readout_weights = (F.pad(self.readout.weight.t(), (0, 0, 0, self.n_i))[order],)
        x0 = self.h0[order].expand(prepared.batch_size, self.n_units)
        offset = None
        if self.encoder is not None and prepared.spikes is not None:
            offset = self.encoder(prepared.spikes.to(self.h0.dtype))
            x0 = x0 + offset[:, order]
        internal_units, rates, *behavior = run_recurrence(
            x0,
            weight,
            drive_table,
            prepared.time_major_rows,
            self.rate_gain,
            readout_weights,
            noise_std=self.noise_std if self.uses_noise(noise) else 0.0,
            generator=generator,
            leak=1.0 - self.alpha,
            activation=self.activation,
            row_sums=prepared.row_sums(drive_table.dtype) if torch.is_grad_enabled() else None,
        )
        unit_order = self.unit_order
        return ModelOutput(
            rates=rates,
            # indexing gathers across the transposed strides several times faster than index_select
            units=lambda: internal_units.transpose(0, 1)[..., unit_order],
            behavior=behavior[0] + self.readout.bias if self.readout is not None else None,
            initial_state_offset=offset,
        )


def create_model_from_data(n_classic: int, n_interneuron: int, n_inputs: int, **options: Any) -> EIRNN:
    """Build an EIRNN for n_classic E and n_interneuron I recorded neurons; `options` are EIRNN's
    keyword arguments (device="auto" picks CUDA when available)."""
    return EIRNN(n_classic, n_interneuron, n_inputs, **options)


def create_model_for_dataset(dataset: Any, **overrides: Any) -> EIRNN:
    """Build an EIRNN sized for a data set (duck-typed: n_e, n_i, n_neurons, n_inputs, ei_labels,
    bin_ms, behavior). Unlabeled data makes every recorded neuron an E unit."""
    labels = dataset.ei_labels
    options: dict[str, Any] = {
        "n_classic": dataset.n_neurons if labels is None else dataset.n_e,
        "n_interneuron": 0 if labels is None else dataset.n_i,
        "n_inputs": dataset.n_inputs,
        "neuron_labels": None if labels is None else [int(label) for label in labels],
        "dt": float(dataset.bin_ms),
        "n_outputs": 0 if dataset.behavior is None else int(dataset.behavior.shape[-1]),
    }
    options.update(overrides)
    return EIRNN(**options)
