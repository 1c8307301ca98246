"""`reuse_freed_memory`: big blocks freed and allocated again reuse their pages instead of faulting in new ones."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

PROBE = """
import resource, sys
import torch
from mer_fastai._plumbing.memory import reuse_freed_memory

def faults(times=5):
    for _ in range(times):
        torch.empty(16 * 2**20, dtype=torch.float64).fill_(1.0)  # 128 MiB, freed at once: above the mmap threshold
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

faults()
before = faults() - faults()
accepted = reuse_freed_memory()
faults(12)  # the heap grows to hold the block beside what else is allocated
start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
after = faults() - start
print(accepted, -before, after)
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_freed_blocks_are_reused_without_page_faults():
    output = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
    accepted, before, after = output.split()
    assert accepted == "True"
    assert int(before) > 5 * 30_000  # every 128 MiB block mapped afresh: 32 768 pages each
    assert int(after) <= int(before) // 4  # the same pages again (the heap may grow once more)
