"""Every chapter that loads models runs on the fabricated NSD tree in bfloat16.

bfloat16 on the CPU meets the dtype mismatches float16 meets on CUDA. A file of its own (the float32
runs, all but chapter 1's under the slow marker, are in ``test_chapters_nsd.py``): ``make test``
distributes files to its two workers.
"""

import pytest

from test_chapters_nsd import NSD_PARAMETERS, run_on_fabricated_nsd


@pytest.mark.parametrize("chapter", sorted(set(NSD_PARAMETERS) - {"01_describe_data"}))  # 01 loads no model
def test_chapter_runs_on_fabricated_nsd_in_bfloat16(chapter, nsd_environment, tmp_path, monkeypatch):
    run_on_fabricated_nsd(chapter, "bfloat16", nsd_environment, tmp_path, monkeypatch)
