"""`load_dataset`: one entry point for every recording format, dispatched by content.

- NWB (``.nwb``, or HDF5 with an NWB version): `eirnn.data.nwb`;
- spike times in ``.mat``/``.npz``: `eirnn.data.spike_times`;
- binned arrays in ``.npz``/``.mat``/HDF5: `eirnn.data.loaders`;
then task inputs built from the task when asked (`eirnn.data.task_inputs`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .dataset import DatasetError, NeuralDataset
from .loaders import load_binned, parse_keys, read_variables
from .nwb import is_nwb_file, load_nwb
from .spike_times import has_spike_times, load_spike_times
from .task_inputs import with_task_inputs


def _refuse(path: Path, kind: str, options: dict[str, object]) -> None:
    """Settings this kind of file does not use are an error, not silently ignored."""
    given = [name for name, value in options.items() if value]
    if given:
        flags = ", ".join(f"--{name.replace('_', '-')}" for name in given)
        raise DatasetError(
            f"{path}: setting {flags}: expected only with NWB files (--align, --window-ms also with spike times); "
            f"found a file of {kind}, which does not use {'it' if len(given) == 1 else 'them'}"
        )


def _refusing_in_one_line(load: Callable[..., NeuralDataset]) -> Callable[..., NeuralDataset]:
    """The readers name the variable for every problem they know of; anything else a lab's file
    makes them meet still ends in one line that names the file, not in a traceback."""

    @functools.wraps(load)
    def refusing(path: str | Path, **options: Any) -> NeuralDataset:
        try:
            return load(path, **options)
        except DatasetError:
            raise
        except (ValueError, TypeError, IndexError, KeyError) as exc:
            reason = (str(exc).strip().splitlines() or [""])[0]
            raise DatasetError(
                f"{path}: expected a recording as docs/data-format.md describes; found {type(exc).__name__}: {reason}"
            ) from exc

    return refusing


@_refusing_in_one_line
def load_dataset(
    path: str | Path,
    *,
    layout: str | Iterable[str] | None = None,
    keys: Mapping[str, str] | str | None = None,
    bin_ms: float | None = None,
    align: str = "",
    window_ms: str | Sequence[float] | None = None,
    condition: str = "",
    ei: str = "",
    behavior: str = "",
    inputs: str = "",
    cue_event: str = "",
    go_event: str = "",
    trials_table: str = "",
    keep_trials: str = "",
    perturbations: str = "",
    optogenetic_sites: str = "",
) -> NeuralDataset:
    """Load a recording into a validated `NeuralDataset` (docs/data-format.md).

    Parameters
    ----------
    layout, keys : axis order and variable names of .npz/.mat files (see `load_binned`).
    bin_ms : bin size in ms; spike times (NWB, .mat/.npz) are binned at it (default 10 ms).
    align, window_ms : NWB: the trials column to align on and the window (START, STOP) in ms
        around it ("-250,450"); no `align` = from start_time. Spike-time files: `align` names
        the per-trial time-zero variable.
    condition : NWB trials column(s) forming the conditions, "a" or "a,b" (combinations).
    ei : NWB units column of E/I labels, "COLUMN" or "COLUMN:E=v1,v2;I=v3".
    behavior : NWB TimeSeries name(s) or path(s), comma-separated, averaged into the bins.
    inputs : "condition-onehot", "cue-go" or a .npy/.npz array path: inputs built from the
        task (NWB default: condition-onehot); `cue_event`/`go_event` are trials columns (NWB)
        or times in ms on the time axis.
    perturbations : NWB: a trials column of perturbation codes with their meaning,
        "COLUMN:CODE=TARGET/KIND/STRENGTH/ONSET_MS/OFFSET_MS;CODE=control" (docs/data-format.md);
        empty = the trials table's perturbation_* columns, when it has them.
    optogenetic_sites : NWB: what the site of each OptogeneticSeries stimulated, "SITE=TARGET/KIND;..."
        or "TARGET/KIND", or "ignore" (`eirnn.data.nwb_optogenetics`); empty = the sites' descriptions.
    trials_table : NWB intervals table holding the trials (name or path; empty = ``trials``).
    keep_trials : NWB trial filters, "COLUMN=V1,V2;COLUMN!=V3" (`eirnn.data.nwb_trials`).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from eirnn.data import load_dataset
    >>> from eirnn.data.loaders import write_dataset
    >>> from eirnn.data.synthetic import make_recording
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "recording.npz"
    >>> path = write_dataset(make_recording(seed=0, n_e=8, n_i=3, n_trials=40, n_bins=20)[0], path)
    >>> dataset = load_dataset(path)
    >>> dataset.n_trials, dataset.n_bins, dataset.n_e, dataset.n_i
    (40, 20, 8, 3)
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: expected a data file; found no such file")
    events = dict(cue_event=cue_event, go_event=go_event)
    opto = dict(perturbations=perturbations, optogenetic_sites=optogenetic_sites)
    labels = dict(condition=condition, ei=ei, behavior=behavior, **opto)
    options = dict(align=align, window_ms=window_ms, **labels)
    trial_options = dict(trials_table=trials_table, keep_trials=keep_trials)
    if is_nwb_file(path):
        if layout or keys:
            raise DatasetError(
                f"{path}: setting --data-layout/--data-keys: expected only for .npz/.mat files; "
                "found an NWB file (use --align, --condition, --ei, --behavior)"
            )
        return load_nwb(path, bin_ms=bin_ms, inputs=inputs, **options, **events, **trial_options)
    contents = read_variables(path)
    if has_spike_times(contents):
        _refuse(path, "spike times (name variables with --data-keys)", {**labels, **trial_options})
        dataset = load_spike_times(contents, keys=parse_keys(keys), bin_ms=bin_ms, window_ms=window_ms, align=align)
        build = inputs or ("" if "inputs" in dataset.meta.get("source_variables", {}) else "condition-onehot")
    else:
        _refuse(path, "binned arrays", {**options, **trial_options})
        dataset = load_binned(contents, layout=layout, keys=keys, bin_ms=bin_ms, build_inputs=bool(inputs))
        build = inputs
    return with_task_inputs(dataset, build, **events)
