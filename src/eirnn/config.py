"""The training configuration: one dataclass that is the CLI flags, the MLproject parameters and
the logged MLflow params (tests/test_config.py keeps the three in step)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from eirnn.choices import (
    ACTIVATIONS,
    EMBEDDINGS,
    INITIAL_STATES,
    LOSSES,
    LR_SCHEDULES,
    OBJECTIVES,
    PERTURBATION_GAINS,
    RECURRENT_INITS,
)
from eirnn.value_ranges import ANY, AT_LEAST_ONE, HALF_OPEN_UNIT, NON_NEGATIVE, OPEN_UNIT, POSITIVE, range_text, within

#: settings passed to `load_dataset` under their own name (`eirnn summary` takes them too)
DATA_OPTIONS = (
    "align",
    "window_ms",
    "condition",
    "ei",
    "behavior",
    "inputs",
    "cue_event",
    "go_event",
    "trials_table",
    "keep_trials",
    "perturbations",
    "optogenetic_sites",
)
DATA_SETTINGS = ("data_layout", "data_keys", "bin_ms", *DATA_OPTIONS)
DEVICES = ("cpu", "cuda", "auto")  # resolved by eirnn.model.network.resolve_device
# validation scores that select models; val_loss is the only one where lower is better
SELECTION_METRICS = ("cond_psth_corr", "psth_corr", "bits_per_spike", "val_loss", "co_bps")
LOWER_IS_BETTER = ("val_loss",)


class ConfigError(ValueError):
    """A setting that cannot work, named with the value found."""


def check_each_setting(settings: Any) -> None:
    """Raise ConfigError for a field of the dataclass `settings` outside its choices or range
    (TrainConfig and its sections run it when built).

    Examples
    --------
    >>> from eirnn.config_sections import FitSettings
    >>> FitSettings(learning_rate=-1.0)
    Traceback (most recent call last):
    ...
    eirnn.config.ConfigError: learning_rate: expected a value > 0, found -1.0
    """
    for spec in fields(settings):
        choices = spec.metadata.get("choices")
        value = getattr(settings, spec.name)
        if choices and value not in choices:
            raise ConfigError(f"{spec.name}: expected one of {', '.join(choices)}, found {value!r}")
        if spec.type in ("int", "float") and not within(value, spec.metadata["allowed"]):
            raise ConfigError(f"{spec.name}: expected {range_text(spec.metadata['allowed'])}, found {value!r}")


def _setting(
    default: Any,
    help: str,
    choices: tuple[str, ...] | None = None,
    *,
    model_arg: bool = False,
    allowed: tuple = ANY,
) -> Any:
    """A TrainConfig field; `model_arg`: passed to the model's constructor under its own name;
    `allowed`: the range a numeric value must lie in (checked, and stated when it does not)."""
    return field(
        default=default, metadata={"help": help, "choices": choices, "model_arg": model_arg, "allowed": allowed}
    )


# the help groups, each named with its first field in declaration order: a field belongs to the
# last group started before it, so a setting added within a section lands in its group
GROUP_STARTS = {"data": "data", "model": "tau", "training": "max_epochs", "tracking": "experiment_name"}


@dataclass
class TrainConfig:
    # data
    data: str = _setting("", "data file (.nwb, .npz, .mat v5/v7.3); empty = the built-in synthetic recording")
    data_layout: str = _setting("", "axis order of the data arrays, e.g. 'neurons,time,trials'; empty = infer")
    data_keys: str = _setting("", "variable names in the file, e.g. 'spikes=psth_counts,inputs=u'")
    bin_ms: float = _setting(
        0.0,
        "bin size in ms: spike times (NWB, .mat/.npz) are counted in it (0 = 10 ms); binned files: when they have none",
        allowed=NON_NEGATIVE,
    )
    align: str = _setting(
        "",
        "NWB: trials column to align on, e.g. move_onset_time, or start_time+CueTime for events stored relative"
        " to the trial start; spike-time files: per-trial time-zero variable (empty = start_time / trial_times)",
    )
    window_ms: str = _setting(
        "", "NWB and spike times: window START,STOP in ms around the alignment, e.g. -250,450 (empty = whole trials)"
    )
    condition: str = _setting(
        "", "NWB: trials column(s) forming the conditions, e.g. target_pos or trial_type,trial_version (combinations)"
    )
    ei: str = _setting(
        "", "NWB: units column of E/I labels, e.g. cell_type, or cell_type:E=RS,pyr;I=FS (empty = a cell_type column)"
    )
    behavior: str = _setting(
        "", "NWB: TimeSeries fitted as behaviour, e.g. hand_vel or processing/behavior/hand_vel (comma-separated)"
    )
    inputs: str = _setting(
        "",
        "task inputs built from the task: condition-onehot, cue-go or a .npy/.npz path (empty = the file's;"
        " NWB and spike times without inputs: condition-onehot)",
    )
    cue_event: str = _setting(
        "", "cue-go inputs: cue onset, a trials column (NWB) or a time in ms (empty = window start)"
    )
    go_event: str = _setting(
        "go_cue_time", "cue-go inputs: onset of the go pulse, a trials column (NWB) or a time in ms, e.g. -300"
    )
    perturbations: str = _setting(
        "",
        "NWB: trials column of optogenetic perturbation codes and their meaning, e.g. PhotostimulationType:"
        "0=control;3=E/inactivation/3/600/1800 (TARGET/KIND/STRENGTH/ONSET_MS/OFFSET_MS on the trial's time axis);"
        " empty = the trials table's perturbation_* columns, when present",
    )
    val_fraction: float = _setting(
        0.2, "share of trials held out for validation, stratified by condition", allowed=OPEN_UNIT
    )
    validate_on_train: bool = _setting(
        False,
        "condition-averaged data only (one pseudo-trial per condition, rates): score validation on the "
        "training trials, since nothing can be held out; refused for any other data",
    )
    drop_silent_neurons: bool = _setting(
        False, "drop neurons that never fire (their count is logged as data.n_silent_dropped); false = refuse them"
    )
    test_fraction: float = _setting(
        0.0,
        "share of trials held out as a test split that training and selection never see (0 = none)",
        allowed=HALF_OPEN_UNIT,
    )
    seed: int = _setting(
        0, "seed of every random step: split, initialisation, noise, batches", model_arg=True, allowed=NON_NEGATIVE
    )
    split_seed: int = _setting(
        -1, "seed of the train/validation/test split and the noise ceiling's splits (-1 = seed)", allowed=ANY
    )
    trials_table: str = _setting(
        "", "NWB: the intervals table holding the trials, e.g. encoding_table (empty = 'trials')"
    )
    keep_trials: str = _setting(
        "",
        "NWB: keep only trials whose columns hold these values, e.g. 'success=1;stimCategory=0,1' "
        "(';' joins columns, ',' lists allowed values; empty = all trials)",
    )
    bootstrap_seed: int = _setting(
        -1,
        "train on a resample (with replacement) of the training trials drawn with this seed; validation and "
        "test trials stay as split (-1 = no resampling)",
        allowed=ANY,
    )
    heldout_neurons: str = _setting(
        "",
        "neurons held out for co-smoothing (co_bps): a fraction drawn with the split seed, e.g. 0.2, or neuron ids, "
        "e.g. 3,17; their spikes never reach the initial-state encoder (empty = none)",
    )
    heldout_perturbations: str = _setting(
        "",
        "perturbation types (labels, comma-separated) kept out of training: the validation trials and the"
        " true circuit's held-out scores test predicting them",
    )
    optogenetic_sites: str = _setting(
        "",
        "NWB: what the site of each OptogeneticSeries (power trace) stimulated, SITE=TARGET/KIND;... or TARGET/KIND"
        " for every site (TARGET E, I or unit ids 3,7; KIND activation or inactivation), or ignore;"
        " empty = each site's description, e.g. 'I activation'",
    )
    # model
    tau: float = _setting(50.0, "membrane time constant in ms", model_arg=True, allowed=POSITIVE)
    noise_scale: float = _setting(
        0.1, "process-noise standard deviation (state units)", model_arg=True, allowed=NON_NEGATIVE
    )
    input_embed_dim: int = _setting(56, "size of the input embedding", model_arg=True, allowed=AT_LEAST_ONE)
    input_embed_type: str = _setting("attention", "input embedding", EMBEDDINGS.names, model_arg=True)
    attention_heads: int = _setting(
        4, "attention heads of the attention embedding", model_arg=True, allowed=AT_LEAST_ONE
    )
    learnable_h0: bool = _setting(True, "learn the initial state h0", model_arg=True)
    h0_init: float = _setting(0.1, "initial value of h0", model_arg=True)
    enforce_ratio: bool = _setting(True, "add hidden units so that n_E : n_I = ei_ratio", model_arg=True)
    ei_ratio: float = _setting(4.0, "E:I ratio used with enforce_ratio", model_arg=True, allowed=POSITIVE)
    activation: str = _setting("softplus", "rate nonlinearity", ACTIVATIONS.names, model_arg=True)
    spectral_radius: float = _setting(
        1.0, "spectral radius of the initial recurrent matrix", model_arg=True, allowed=POSITIVE
    )
    initial_state: str = _setting(
        "shared",
        "initial state x[0]: one shared h0, or inferred per trial from its held-in spikes by an encoder",
        INITIAL_STATES.names,
        model_arg=True,
    )
    encoder_hidden: int = _setting(
        32,
        "hidden units per direction of the initial-state encoder (inferred only)",
        model_arg=True,
        allowed=AT_LEAST_ONE,
    )
    forward_bins: int = _setting(
        0,
        "last bins of each trial scored by forward prediction (fp_bps) and never read by the encoder (0 = none)",
        model_arg=True,
        allowed=NON_NEGATIVE,
    )
    perturbation_gain: str = _setting(
        "fixed",
        "drive per unit of perturbation strength: fixed at 1, or learned per population (E, I) with the weights",
        PERTURBATION_GAINS.names,
        model_arg=True,
    )
    # training
    max_epochs: int = _setting(2000, "maximum number of epochs", allowed=AT_LEAST_ONE)
    selection_metric: str = _setting(
        "cond_psth_corr",
        "validation score that early stopping, the best checkpoint, tuning and the champion use",
        SELECTION_METRICS,
    )
    patience: int = _setting(
        100, "stop when the selection score rose by less than min_delta in this many epochs", allowed=AT_LEAST_ONE
    )
    smoothing: float = _setting(
        0.0, "exponential smoothing of the early-stopping metric (0 = none, 0.9 = strong)", allowed=HALF_OPEN_UNIT
    )
    min_delta: float = _setting(
        0.001, "smallest rise of the (smoothed) selection score that restarts the patience count", allowed=NON_NEGATIVE
    )
    learning_rate: float = _setting(0.005, "Adam learning rate (the base rate of lr_schedule)", allowed=POSITIVE)
    weight_decay: float = _setting(0.0, "Adam weight decay", allowed=NON_NEGATIVE)
    grad_clip: float = _setting(1.0, "gradient-norm clipping (0 = off)", allowed=NON_NEGATIVE)
    batch_size: int = _setting(0, "trials per batch (0 = full batch)", allowed=NON_NEGATIVE)
    loss: str = _setting("mse", "training loss: per-neuron normalised rate MSE or Poisson count NLL", LOSSES.names)
    behavior_weight: float = _setting(
        1.0, "weight of the behaviour readout loss (data with behaviour only)", allowed=NON_NEGATIVE
    )
    checkpoint_every: int = _setting(100, "write a resumable checkpoint every N epochs", allowed=NON_NEGATIVE)
    checkpoint_seconds: float = _setting(
        10.0,
        "also refresh the resumable checkpoint when this many seconds passed since the last one (0 = off)",
        allowed=NON_NEGATIVE,
    )
    device: str = _setting("cpu", "where to train; auto = CUDA when present", DEVICES, model_arg=True)
    threads: int = _setting(0, "torch threads (0 = all cores)", allowed=NON_NEGATIVE)
    initial_state_penalty: float = _setting(
        0.0,
        "inferred initial states: weight of the mean squared offset of each trial's x[0] from the shared h0 "
        "(0 = none, measured best: benchmarks/README.md)",
        allowed=NON_NEGATIVE,
    )
    objective: str = _setting(
        "free_running",
        "fitting objective: free_running matches the free-running network's rates to the data; teacher_forced "
        "adds teacher_forcing_weight x a one-step prediction of the recorded neurons' single-trial currents",
        OBJECTIVES.names,
    )
    teacher_forcing_weight: float = _setting(
        1.0, "weight of the teacher-forced term (objective teacher_forced)", allowed=NON_NEGATIVE
    )
    single_trial_smoothing_bins: float = _setting(
        1.0,
        "s.d. in bins of the Gaussian kernel smoothing single-trial counts for the teacher-forced term and "
        "the least-squares initialisation (0 = none)",
        allowed=NON_NEGATIVE,
    )
    recurrent_init: str = _setting(
        "least_squares",
        "initial W_rec among recorded neurons: random (balanced Dale matrix) or least_squares (Dale's-law "
        "regression of next-step single-trial currents)",
        RECURRENT_INITS.names,
    )
    recurrent: bool = _setting(True, "false = recurrent weights held at zero (an ablation control)")
    lr_schedule: str = _setting(
        "constant",
        "learning rate per epoch: constant, warmup (10 epochs up, then constant), warmup_cosine (10 epochs up, "
        "cosine down to 1% at max_epochs) or "
        "plateau (halved after patience/4 epochs without a rise)",
        LR_SCHEDULES.names,
    )
    # tracking
    experiment_name: str = _setting("eirnn", "MLflow experiment (when not launched by `mlflow run`)")
    registered_model_name: str = _setting("eirnn", "registry name of the trained model")
    run_name: str = _setting("", "MLflow run name (empty = built from the settings)")
    log_figures: bool = _setting(True, "write figures and report.md into the run")
    resume: str = _setting("", "MLflow run id of a killed run to continue from its last checkpoint")

    def __post_init__(self) -> None:
        check_each_setting(self)
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ConfigError(
                f"test_fraction: expected val_fraction + test_fraction < 1 (training needs trials), found "
                f"{self.val_fraction} + {self.test_fraction}"
            )
        if self.input_embed_type == "attention" and self.input_embed_dim % self.attention_heads:
            # multi-head attention splits the embedding evenly across heads
            raise ConfigError(
                f"input_embed_dim: expected a multiple of attention_heads={self.attention_heads}, "
                f"found {self.input_embed_dim}"
            )

    @property
    def data_split_seed(self) -> int:
        """The seed of the data split and of everything that depends on the data only."""
        return self.seed if self.split_seed < 0 else self.split_seed

    def data_options(self) -> dict[str, Any]:
        """The keyword arguments of `eirnn.data.load_dataset` for `self.data`."""
        return {
            "layout": self.data_layout or None,
            "keys": self.data_keys or None,
            "bin_ms": self.bin_ms or None,
            **{name: getattr(self, name) for name in DATA_OPTIONS},
        }

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def model_kwargs(self) -> dict[str, Any]:
        """The settings the model's constructor takes (the model section), by name."""
        return dataclasses.asdict(self.section("model"))

    def section(self, name: str) -> Any:
        """The settings of one section (`eirnn.config_sections.SECTIONS`: data, model, training,
        tracking) as a frozen, checked dataclass: ``config.section("training")`` is the
        `FitSettings` that `eirnn.training.fit` takes.

        Examples
        --------
        >>> from eirnn.config import TrainConfig
        >>> fit_settings = TrainConfig(max_epochs=300, seed=2).section("training")
        >>> type(fit_settings).__name__, fit_settings.max_epochs, fit_settings.seed
        ('FitSettings', 300, 2)
        """
        # imported here, not at the top: that module imports this one, and `eirnn --help` needs
        # no sections
        from eirnn.config_sections import SECTIONS

        if name not in SECTIONS:
            raise ConfigError(f"section: expected one of {', '.join(SECTIONS)}, found {name!r}")
        return SECTIONS[name](**{spec.name: getattr(self, spec.name) for spec in fields(SECTIONS[name])})

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def command_line(self) -> list[str]:
        """Every setting as its CLI flag (`--name=value`, which also carries values that start
        with '-'), for starting a worker process with exactly these settings."""
        return [f"{flag_name(spec.name)}={mlproject_default(getattr(self, spec.name))}" for spec in fields(self)]

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a dict of native or string values (MLflow params are strings); unknown keys
        are ignored so that configs written by newer versions still load."""
        kinds = {spec.name: spec.type for spec in fields(cls)}
        return cls(**{k: parse_value(kinds[k], v) for k, v in values.items() if k in kinds})

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))


def parse_bool(text: str | bool) -> bool:
    if isinstance(text, bool):
        return text
    lowered = str(text).strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, found {text!r}")


_PARSERS = {"bool": parse_bool, "int": int, "float": float, "str": str}


def parse_value(kind: str, value: Any) -> Any:
    return _PARSERS[kind](value)


def flag_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def setting_groups() -> dict[str, list[str]]:
    """{help group: TrainConfig field names}, in declaration order."""
    groups: dict[str, list[str]] = {}
    starts = {first: group for group, first in GROUP_STARTS.items()}
    group = next(iter(GROUP_STARTS))
    for spec in fields(TrainConfig):
        group = starts.get(spec.name, group)
        groups.setdefault(group, []).append(spec.name)
    return groups


def add_config_arguments(
    parser: argparse.ArgumentParser, skip: tuple[str, ...] = (), defaults: dict[str, Any] | None = None
) -> None:
    """One flag per TrainConfig field, same name (dashes), type, default and choices, in the help
    groups data / model / training / tracking; `defaults` replaces field defaults (and their help)."""
    specs = {spec.name: spec for spec in fields(TrainConfig)}
    defaults = defaults or {}
    for group_name, names in setting_groups().items():
        group = parser.add_argument_group(f"{group_name} settings")
        for name in (n for n in names if n not in skip):
            spec = specs[name]
            default = defaults.get(name, spec.default)
            choices = spec.metadata.get("choices")
            shown = mlproject_default(default) if default != "" else '""'
            group.add_argument(
                flag_name(name),
                dest=name,
                type=_PARSERS[spec.type],
                default=default,
                choices=choices,
                # choices show as {a,b,c}; other flags name their type
                metavar=None if choices else spec.type.upper(),
                help=f"{spec.metadata['help']} (default: {shown})".replace("%", "%%"),
            )


def join_negative_values(argv: list[str]) -> list[str]:
    """``--window-ms -250,450`` -> ``--window-ms=-250,450``: argparse reads a value that starts
    with '-' and is not a plain number as an unknown flag."""
    joined: list[str] = []
    for token in argv:
        previous = joined[-1] if joined else ""
        if re.match(r"-\d", token) and previous.startswith("--") and "=" not in previous:
            joined[-1] = f"{previous}={token}"
        else:
            joined.append(token)
    return joined


def config_from_args(args: argparse.Namespace, **overrides: Any) -> TrainConfig:
    values = {spec.name: getattr(args, spec.name) for spec in fields(TrainConfig) if hasattr(args, spec.name)}
    values.update(overrides)
    return TrainConfig(**values)


def mlproject_default(value: Any) -> str:
    """The MLproject spelling of a default: booleans as true/false, everything else as str()."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
