"""The encoding chapters run on every world subject by one papermill parameter, not only subj01."""

import nbformat
import pytest

from brainldm.book import build as book

ENCODING_CHAPTERS = ("09_encode_latents", "10_compare_noise_levels", "11_compare_timesteps", "12_compare_unet_layers")


@pytest.mark.parametrize("chapter", ENCODING_CHAPTERS)
def test_encoding_chapter_runs_on_another_world_subject(chapter, tmp_path):
    parameters = {**book.smoke_parameters().get(chapter, {}), "subject": "subj07"}
    out = book.run_chapter(chapter, parameters, output_dir=tmp_path)
    nb = nbformat.read(out, as_version=4)
    texts = ["".join(o.get("text", "")) for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert any("<WorldDataset 'world' subj07" in t for t in texts)  # the dataset the chapter loaded
