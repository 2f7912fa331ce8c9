"""Every public function has a docstring Example that runs and prints what it says.

The public functions are the ones the API reference shows (the ``::: identifier`` lines of
docs/reference/*.md and the ``members`` they list), and the reference shows every name of
`eirnn.__all__`: a function added to either without a runnable Example fails here. A method
listed under a class or module may instead be called in the class's (module's) Example.
"""

import doctest
import importlib
import inspect
import re

import pytest
from conftest import REPO

import eirnn

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


def _has_examples(target) -> bool:
    return "Examples\n" in inspect.cleandoc(target.__doc__ or "")


def public_functions() -> dict[str, list[str]]:
    """The functions the API reference documents, by dotted name -> the members its Example must
    call: a function has none; a class or a module with an Example whose listed functions have
    no Examples of their own is an entry whose Example calls each of them."""
    names: dict[str, list[str]] = {}
    for identifier, members in reference_entries():
        target = resolve(identifier)
        if inspect.isfunction(target):
            names[identifier] = []
        elif inspect.ismodule(target) or inspect.isclass(target):
            members_only = inspect.ismodule(target) and not _has_examples(target)
            functions = [
                member for member in members or [] if inspect.isfunction(inspect.getattr_static(target, member))
            ]
            names.update(
                {f"{identifier}.{member}": [] for member in functions if _has_examples(getattr(target, member))}
            )
            uncovered = [member for member in functions if f"{identifier}.{member}" not in names]
            if uncovered and not members_only:
                names[identifier] = uncovered
            else:
                names.update({f"{identifier}.{member}": [] for member in uncovered})
    return dict(sorted(names.items()))


PUBLIC_FUNCTIONS = public_functions()


def test_the_reference_shows_every_name_of_eirnn_all():
    shown = {identifier.rsplit(".", 1)[-1] for identifier, _ in reference_entries()}
    missing = [name for name in eirnn.__all__ if name != "__version__" and name not in shown]
    assert not missing, f"eirnn.__all__ names missing from docs/reference/: {missing}"


def test_the_reference_lists_the_functions_users_call():
    assert {"eirnn.api.train", "eirnn.api.ensemble", "eirnn.evaluation.evaluate"} <= set(PUBLIC_FUNCTIONS)
    assert PUBLIC_FUNCTIONS["eirnn.data.dataset.NeuralDataset"] == ["subset", "condition_psths", "summary", "facts"]
    assert PUBLIC_FUNCTIONS["eirnn.data.synthetic"] == ["make_recording"]
    assert len(PUBLIC_FUNCTIONS) >= 30


# examples that need a tracking store and fit several models: tens of seconds each
SLOW = {"eirnn.api.ensemble", "eirnn.tracking.model_registry.load_model"}


@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name for name in PUBLIC_FUNCTIONS]
)
def test_docstring_example_runs(name, tmp_path, monkeypatch):
    target = resolve(name)
    monkeypatch.chdir(tmp_path)  # whatever an example writes by default stays out of the checkout
    examples = doctest.DocTestFinder(recurse=False).find(target, name, globs={})
    assert examples and examples[0].examples, f"{name} has no Examples section"
    source = "".join(example.source for test in examples for example in test.examples)
    uncalled = [member for member in PUBLIC_FUNCTIONS[name] if not re.search(rf"\b{member}\(", source)]
    assert not uncalled, f"{name}: the Example calls none of {uncalled}, which have no Examples of their own"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for example in examples:
        runner.run(example)
    assert runner.summarize(verbose=False).failed == 0
