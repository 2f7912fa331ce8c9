"""The Examples of the public functions' docstrings run and print what they say (the API
reference shows them: docs/reference/)."""

import doctest
import importlib

import pytest

PUBLIC_FUNCTIONS = [
    "eirnn.api.train",
    "eirnn.api.split",
    "eirnn.data.format_dispatch.load_dataset",
    "eirnn.evaluation.evaluate",
    "eirnn.tracking.model_registry.load_model",
    "eirnn.metrics.correlation.psth_correlation",
    "eirnn.metrics.correlation.condition_psth_correlation",
    "eirnn.metrics.correlation.psth_r2",
    "eirnn.metrics.correlation.pearson_r",
    "eirnn.metrics.likelihood.bits_per_spike",
    "eirnn.metrics.variability.fano_factor",
    "eirnn.metrics.reliability.noise_ceiling",
    "eirnn.metrics.reliability.normalized_correlation",
]


@pytest.mark.parametrize("name", PUBLIC_FUNCTIONS)
def test_docstring_example_runs(name, tmp_path, monkeypatch):
    module_name, function_name = name.rsplit(".", 1)
    function = getattr(importlib.import_module(module_name), function_name)
    monkeypatch.chdir(tmp_path)  # whatever an example writes by default stays out of the checkout
    examples = doctest.DocTestFinder(recurse=False).find(function, name, globs={})
    assert examples and examples[0].examples, f"{name} has no Examples section"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for example in examples:
        runner.run(example)
    assert runner.summarize(verbose=False).failed == 0
