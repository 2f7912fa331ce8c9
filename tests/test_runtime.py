"""The training process settings: freed tensor memory is reused, not faulted in again."""

import subprocess
import sys

import pytest

# allocates and frees a 200 MB tensor ten times and prints the page faults of the last six: the
# first few may still grow the heap (each 2 MB-aligned block needs room around the freed one)
FAULTS_OF_REPEATED_ALLOCATIONS = """
import os, resource, sys
from eirnn.runtime import configure_for_training
configured = configure_for_training() if sys.argv[1] == "configured" else None
import torch
for _ in range(4):
    torch.ones(50_000_000)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(6):
    torch.ones(50_000_000)
print(configured, os.environ.get("THP_MEM_ALLOC_ENABLE"), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> tuple[str, str, int]:
    result = subprocess.run(
        [sys.executable, "-c", FAULTS_OF_REPEATED_ALLOCATIONS, mode],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "", "HOME": "/tmp"},
    )
    configured, thp, faults = result.stdout.split()
    return configured, thp, int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_configured_process_reuses_freed_tensor_memory():
    configured, thp, faults = _faults("configured")
    assert (configured, thp) == ("True", "1")
    # 6 x 200 MB faulted in again would be ~300 000 small pages (or ~600 huge ones)
    assert faults < 100
    _, default_thp, default_faults = _faults("default")
    assert default_thp == "None"
    assert default_faults > 10 * max(faults, 10)
