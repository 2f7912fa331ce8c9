"""The process memory settings: importing eirnn changes nothing in the process; a run applies
them when it starts (`eirnn.memory_allocator.configure_unless_opted_out`, the first step of
`TrainingRun.execute`), so that freed tensor memory is reused, not faulted in again, unless the
user opts out."""

import os
import subprocess
import sys

import pytest

# allocates and frees a 200 MB tensor ten times and prints the page faults of the last six: the
# first few may still grow the heap (each 2 MB-aligned block needs room around the freed one)
FAULTS_OF_REPEATED_ALLOCATIONS = """
import os, resource, sys
import eirnn
if sys.argv[1] == "run-start":
    from eirnn.memory_allocator import configure_unless_opted_out
    configure_unless_opted_out()
import torch
for _ in range(4):
    torch.ones(50_000_000)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(6):
    torch.ones(50_000_000)
print(os.environ.get("THP_MEM_ALLOC_ENABLE"), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(when: str, extra_env: dict[str, str]) -> tuple[str, int]:
    result = subprocess.run(
        [sys.executable, "-c", FAULTS_OF_REPEATED_ALLOCATIONS, when],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "", "HOME": "/tmp", "PYTHONPATH": os.environ.get("PYTHONPATH", ""), **extra_env},
    )
    thp, faults = result.stdout.split()
    return thp, int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_a_run_start_makes_the_process_reuse_freed_tensor_memory_and_importing_eirnn_does_not():
    thp, faults = _faults("run-start", {})
    assert thp == "1"
    # 6 x 200 MB faulted in again would be ~300 000 small pages (or ~600 huge ones)
    assert faults < 100
    opted_out_thp, opted_out_faults = _faults("run-start", {"EIRNN_KEEP_FREED_MEMORY": "0"})
    assert opted_out_thp == "None"
    assert opted_out_faults > 10 * max(faults, 10)
    import_thp, import_faults = _faults("import-only", {})
    assert import_thp == "None"
    assert import_faults > 10 * max(faults, 10)
