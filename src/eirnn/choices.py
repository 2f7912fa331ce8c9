"""The named choices of the model and training: one registry per choice, mapping each name (the
default first) to the class or function that implements it.

`TrainConfig` offers a registry's names as flag choices (and so does `eirnn --help`), the Optuna
search space samples from them, and the model, the losses, the schedules and the initialisers
look their implementation up in it: a name and its implementation are written once, here.
Implementations are named as "module:attribute" and imported on first use, so that the CLI and
the config can read the names without importing torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any


class UnknownChoice(ValueError, KeyError):
    """A name that is not in its registry."""

    __str__ = ValueError.__str__  # the message as written, not KeyError's repr of it


class Registry(Mapping[str, Any]):
    """Name -> implementation of one setting's choices, resolved lazily.

    Parameters
    ----------
    setting : str
        The `TrainConfig` field that holds the name (used in error messages).
    implementations : dict of str to str
        Name -> "module:attribute" of its implementation, the default first.

    Examples
    --------
    >>> from eirnn.choices import LR_SCHEDULES
    >>> LR_SCHEDULES.names
    ('constant', 'warmup', 'warmup_cosine', 'plateau')
    >>> LR_SCHEDULES["constant"].__name__
    'constant_rate'
    """

    def __init__(self, setting: str, implementations: dict[str, str]) -> None:
        self.setting = setting
        self.paths = dict(implementations)
        self.names = tuple(implementations)
        self._resolved: dict[str, Any] = {}  # the recurrence looks its activation up every batch

    def __getitem__(self, name: str) -> Any:
        if name not in self._resolved:
            if name not in self.paths:
                raise UnknownChoice(f"{self.setting} must be one of {self.names}, got {name!r}")
            module, attribute = self.paths[name].split(":")
            self._resolved[name] = getattr(importlib.import_module(module), attribute)
        return self._resolved[name]

    def __contains__(self, name: object) -> bool:
        return name in self.paths

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        return f"Registry({self.setting!r}, {self.paths!r})"


# input embedding e(u)
EMBEDDINGS = Registry(
    "input_embed_type",
    {
        "attention": "eirnn.model.embeddings:AttentionEmbedding",
        "linear": "eirnn.model.embeddings:LinearEmbedding",
        "mlp": "eirnn.model.embeddings:MLPEmbedding",
    },
)
# rate nonlinearity f: its rate, slope and inverse
ACTIVATIONS = Registry(
    "activation",
    {"softplus": "eirnn.model.activations:Softplus", "relu": "eirnn.model.activations:ReLU"},
)
# training loss of the rates
LOSSES = Registry("loss", {"mse": "eirnn.losses:NormalizedMSE", "poisson": "eirnn.losses:PoissonNLL"})
# x[0]: one learned h0 shared by every trial (no encoder), or inferred per trial by an encoder
INITIAL_STATES = Registry(
    "initial_state",
    {"shared": "eirnn.model.encoder:no_encoder", "inferred": "eirnn.model.encoder:InitialStateEncoder"},
)
# fitting objective: the weight it gives the teacher-forced term
OBJECTIVES = Registry(
    "objective",
    {
        "free_running": "eirnn.training.teacher_forcing:free_running_weight",
        "teacher_forced": "eirnn.training.teacher_forcing:teacher_forced_weight",
    },
)
# initial W_rec among the recorded neurons
RECURRENT_INITS = Registry(
    "recurrent_init",
    {
        "least_squares": "eirnn.training.teacher_forcing:initialise_by_least_squares",
        "random": "eirnn.training.teacher_forcing:keep_random_initialisation",
    },
)
# drive per unit of perturbation strength (docs/perturbations.md): its log-gain parameter, if any
PERTURBATION_GAINS = Registry(
    "perturbation_gain",
    {
        "fixed": "eirnn.model.network:fixed_perturbation_gain",
        "learned": "eirnn.model.network:learned_perturbation_gain",
    },
)
# learning rate per epoch
LR_SCHEDULES = Registry(
    "lr_schedule",
    {
        "constant": "eirnn.training.schedules:constant_rate",
        "warmup": "eirnn.training.schedules:warmup_rate",
        "warmup_cosine": "eirnn.training.schedules:warmup_cosine_rate",
        "plateau": "eirnn.training.schedules:plateau_rate",
    },
)

#: every registry, by the TrainConfig field whose value names its entry
REGISTRIES = {
    registry.setting: registry
    for registry in (
        EMBEDDINGS,
        ACTIVATIONS,
        LOSSES,
        INITIAL_STATES,
        OBJECTIVES,
        RECURRENT_INITS,
        PERTURBATION_GAINS,
        LR_SCHEDULES,
    )
}
