"""A worker keeps the memory a computation frees for the next one (app.worker.keep_freed_memory),
instead of faulting it in again page by page: measured in fresh processes, since malloc's
settings are the whole process's."""

import platform
import subprocess
import sys

import pytest

# Temporaries of an MLP's gradient (64x256 and 256x256 float64 arrays: 128 to 512 KB), all
# freed when the call ends, as a plan's are; the page faults of one call, once warm.
FAULTS_PER_CALL = """
import resource, sys
import numpy as np
from app import worker

def call():
    temporaries = [np.ones(16384 * (1 + i % 4)) for i in range(24)]
    return sum(float(t[-1]) for t in temporaries)

if sys.argv[1] == "kept":
    assert worker.keep_freed_memory()
for _ in range(5):
    call()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    call()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 50)
"""


def _faults_per_call(setting: str) -> float:
    done = subprocess.run([sys.executable, "-c", FAULTS_PER_CALL, setting], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return float(done.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc options: the C library is not glibc")
def test_freed_memory_is_kept_for_the_next_call():
    # The same calls, by default: the heap's top is trimmed and ~7 MB faulted in again each call.
    assert _faults_per_call("default") > 500
    assert _faults_per_call("kept") < 5
