import subprocess
import sys

import pytest

from pyro_frmdn.infer.memory import keep_freed_memory

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")

# eight rounds of a 64 MiB tensor written whole and freed, as a training step's large gradient;
# prints how many rounds took fewer page faults than a tenth of the tensor's 4 KiB pages
ROUNDS = """
import resource, torch
from pyro_frmdn.infer.memory import keep_freed_memory
if {keep}:
    assert keep_freed_memory() and keep_freed_memory()
reused = 0
for _ in range(8):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.empty(16 * 2**20).fill_(1.0)
    reused += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before < 16384 // 10
print(reused)
"""


def rounds_without_fresh_pages(keep: bool) -> int:
    # a fresh process each: the setting is process-wide
    code = ROUNDS.format(keep=keep)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout)


def test_freed_memory_is_reused_without_page_faults():
    # the heap grows in the first rounds; after that the freed tensor's pages are reused
    assert rounds_without_fresh_pages(keep=True) >= 5


def test_without_the_setting_every_large_tensor_faults_its_pages():
    assert rounds_without_fresh_pages(keep=False) == 0


def test_keep_freed_memory_reports_the_setting():
    assert keep_freed_memory() is True
