"""A default (tiny) run logs the same params, metrics, tags and artifact paths as the code before
the run moved into the science core (the expected lists and the command that recorded them:
tests/default_run_names.py)."""

import json
from dataclasses import fields

from conftest import REPO
from default_run_names import TINY_RUN, logged_names

import eirnn
from eirnn.config import TrainConfig

EXPECTED = REPO / "tests" / "expected" / "default_run_logged_names.json"


def test_default_run_logs_the_recorded_names(tracking_store, tiny_recording_file):
    result = eirnn.train(tiny_recording_file, **TINY_RUN)
    expected = json.loads(EXPECTED.read_text())
    # every TrainConfig field is a logged param, those added since the recording included
    data_facts = [name for name in expected["params"] if name.startswith("data.")]
    expected["params"] = sorted({*data_facts, *(spec.name for spec in fields(TrainConfig))})
    found = logged_names(result.run_id)
    for kind in ("params", "metrics", "tags", "artifacts"):
        assert found[kind] == expected[kind], kind
