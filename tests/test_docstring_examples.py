"""Every public function has a docstring Example that runs and prints what it says.

The public functions are the ones the API reference shows (the ``::: identifier`` lines of
docs/reference/*.md and the ``members`` they list), and the reference shows every name of
`eirnn.__all__`: a function added to either without a runnable Example fails here.
"""

import doctest
import importlib
import inspect
import re

import eirnn
import pytest
from conftest import REPO

REFERENCE_PAGES = sorted((REPO / "docs" / "reference").glob("*.md"))
IDENTIFIER = re.compile(r"^::: ([\w.]+)\s*$")
MEMBERS = re.compile(r"^\s+members:\s*(.*)$")


def reference_entries() -> list[tuple[str, list[str] | None]]:
    """(identifier, its listed members or None) of every ``:::`` entry of the reference pages."""
    entries: list[tuple[str, list[str] | None]] = []
    for page in REFERENCE_PAGES:
        for line in page.read_text(encoding="utf-8").splitlines():
            if found := IDENTIFIER.match(line):
                entries.append((found.group(1), None))
            elif (found := MEMBERS.match(line)) and entries:
                listed = found.group(1).strip()
                entries[-1] = (entries[-1][0], re.findall(r"\w+", listed) if listed.startswith("[") else [])
    return entries


def resolve(identifier: str):
    parts = identifier.split(".")
    for split_at in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:split_at]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[split_at:]:
            target = getattr(target, attribute)
        return target
    raise LookupError(identifier)


def public_functions() -> list[str]:
    """The functions and methods the API reference documents, by dotted name."""
    names = []
    for identifier, members in reference_entries():
        target = resolve(identifier)
        if inspect.isfunction(target):
            names.append(identifier)
        elif inspect.ismodule(target) or inspect.isclass(target):
            for member in members or []:
                if inspect.isfunction(inspect.getattr_static(target, member)):
                    names.append(f"{identifier}.{member}")
    return sorted(set(names))


PUBLIC_FUNCTIONS = public_functions()


def test_the_reference_shows_every_name_of_eirnn_all():
    shown = {identifier.rsplit(".", 1)[-1] for identifier, _ in reference_entries()}
    missing = [name for name in eirnn.__all__ if name != "__version__" and name not in shown]
    assert not missing, f"eirnn.__all__ names missing from docs/reference/: {missing}"


def test_the_reference_lists_the_functions_users_call():
    assert {"eirnn.api.train", "eirnn.api.ensemble", "eirnn.evaluation.evaluate"} <= set(PUBLIC_FUNCTIONS)
    assert len(PUBLIC_FUNCTIONS) >= 30


@pytest.mark.parametrize("name", PUBLIC_FUNCTIONS)
def test_docstring_example_runs(name, tmp_path, monkeypatch):
    function = resolve(name)
    monkeypatch.chdir(tmp_path)  # whatever an example writes by default stays out of the checkout
    examples = doctest.DocTestFinder(recurse=False).find(function, name, globs={})
    assert examples and examples[0].examples, f"{name} has no Examples section"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for example in examples:
        runner.run(example)
    assert runner.summarize(verbose=False).failed == 0
