"""Recordings for eirnn: the validated `NeuralDataset`, file loaders (binned arrays, spike
times, NWB) and train/validation splits.

The built-in synthetic recording lives in `eirnn.data.synthetic` and the real M1 example in
`eirnn.data.examples`; the file schema is described in docs/data-format.md.
"""

from .binned_files import parse_keys, parse_layout, write_dataset
from .dataset import DatasetError, NeuralDataset
from .format_dispatch import load_dataset
from .split import hold_out_test, train_val_split

__all__ = [
    "DatasetError",
    "NeuralDataset",
    "hold_out_test",
    "load_dataset",
    "parse_keys",
    "parse_layout",
    "train_val_split",
    "write_dataset",
]
