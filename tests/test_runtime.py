"""The process memory settings: importing eirnn makes freed tensor memory be reused, not
faulted in again, unless the user opts out."""

import os
import subprocess
import sys

import pytest

# allocates and frees a 200 MB tensor ten times and prints the page faults of the last six: the
# first few may still grow the heap (each 2 MB-aligned block needs room around the freed one)
FAULTS_OF_REPEATED_ALLOCATIONS = """
import os, resource
import eirnn
import torch
for _ in range(4):
    torch.ones(50_000_000)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(6):
    torch.ones(50_000_000)
print(os.environ.get("THP_MEM_ALLOC_ENABLE"), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(extra_env: dict[str, str]) -> tuple[str, int]:
    result = subprocess.run(
        [sys.executable, "-c", FAULTS_OF_REPEATED_ALLOCATIONS],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "", "HOME": "/tmp", "PYTHONPATH": os.environ.get("PYTHONPATH", ""), **extra_env},
    )
    thp, faults = result.stdout.split()
    return thp, int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_importing_eirnn_makes_the_process_reuse_freed_tensor_memory():
    thp, faults = _faults({})
    assert thp == "1"
    # 6 x 200 MB faulted in again would be ~300 000 small pages (or ~600 huge ones)
    assert faults < 100
    opted_out_thp, opted_out_faults = _faults({"EIRNN_KEEP_FREED_MEMORY": "0"})
    assert opted_out_thp == "None"
    assert opted_out_faults > 10 * max(faults, 10)
