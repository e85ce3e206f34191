"""Chapter 90's tables of the world models' card (brainldm.training.report) and its loss-curve figure."""

import numpy as np
import pytest

from brainldm.models.ldm import SamplerSettings
from brainldm.training import report


def _card():
    stages = [{"steps": 10, "batch_size": 4, "learning_rate": 0.01, "seconds": 120.0},
              {"steps": 20, "batch_size": 4, "learning_rate": 0.001, "seconds": 600.0, "pool_images": 500,
               "snr_gamma": 5.0, "transformer_layers": 2}]
    models = {
        "vae": {"params": 1_500_000, "megabytes": 6.0, "steps": 30, "batch_size": 4, "seconds": 720.0,
                "loss_first": 1.0, "loss_last": 0.1, "loss_curve": [1.0, 0.5, 0.1], "loss_curve_every": 10,
                "loss_curve_start": 10, "stages": stages},
        "cnn": {"params": 500_000, "megabytes": 2.0, "steps": 5, "batch_size": 8, "seconds": 1080.0,
                "loss_first": 2.0, "loss_last": 0.2, "loss_curve": [2.0, 0.2], "loss_curve_every": 5},
    }
    pool = {"n_images": 171, "n_fresh": 100, "n_leaked_test_images": 71, "image_size": 64, "seed": 3,
            "text_max_length": 32}
    return {"pool": pool, "models": models, "quality": {"n_eval": 100, "num_inference_steps": 50}}


def test_pool_summary_and_totals():
    card = _card()
    summary = report.pool_summary(card)
    assert "pool: 171 images of 64 x 64 pixels (100 fresh + 71 shared-test images, 7.2% of the 982" in summary
    assert "world seed 3" in summary and "32 tokens" in summary
    totals = report.card_totals(card)
    assert totals.parameters_m == pytest.approx(2.0) and totals.megabytes == pytest.approx(8.0)
    assert totals.training_hours == pytest.approx(0.5)  # 12 + 18 minutes
    assert (totals.card_n_eval, totals.card_steps) == (100, 50)
    assert str(totals) == "total: 2.0 M parameters, 8.0 MB, 30 minutes of training"
    assert set(totals.as_dict()) == {"parameters_m", "megabytes", "training_hours", "card_n_eval", "card_steps"}


def test_stage_table_lists_every_stage():
    table = report.stage_table(_card())
    assert list(table.index) == [("vae", 1), ("vae", 2)]  # the CNN has no stages
    np.testing.assert_array_equal(table["images"], [171, 500])  # the pool, unless a stage says otherwise
    np.testing.assert_array_equal(table["minutes"], [2, 10])
    assert list(table["options"]) == ["–", "snr_gamma 5.0, transformer_layers 2"]  # in STAGE_OPTIONS' order


def test_quality_details_and_sample_rows():
    quality = {"img2img_identification": {"cnn_late": 0.91234}, "vae_identification": {"cnn_late": 0.97654},
               "cnn_accuracy": {"place": 1.0, "mean": 1.0}, "vae_cnn_accuracy": {"place": 0.75, "mean": 0.625},
               "captioner_accuracy": {"place": 0.5, "mean": 0.5}, "depth2img_r": 0.876, "strength": 0.6}
    text = report.quality_details(quality, {"img2img_identification": {"cnn_late": 0.8}})
    assert "cnn_late" in text and "0.912" in text and "0.8" in text and "r = 0.88" in text
    assert "VAE round trip (ceiling)" in text and "0.977" in text and "0.625" in text  # img2img's ceiling beside it
    no_depth = {k: v for k, v in quality.items() if k != "depth2img_r"}
    assert "depth-conditioned" not in report.quality_details(no_depth, quality)
    images = {"original": np.zeros((5, 4, 4, 3)), "img2img": np.ones((5, 4, 4, 3)), "vae": np.zeros((5, 4, 4, 3))}
    rows = report.sample_rows(quality, images, 2)
    assert list(rows) == ["image", "VAE", "img2img 0.6"]  # in the card's order, missing samples left out
    assert rows["img2img 0.6"].shape == (2, 4, 4, 3)


def test_loss_curves_one_panel_per_model():
    import matplotlib.pyplot as plt

    from brainldm.figures.describe import loss_curves

    fig = loss_curves(_card())
    assert [ax.get_title() for ax in fig.axes] == ["vae", "cnn"]
    np.testing.assert_array_equal(fig.axes[0].lines[0].get_xdata(), [10, 20, 30])  # from loss_curve_start
    plt.close(fig)


def test_strength_series_keeps_the_image_below_strength_one():
    import torch

    from brainldm.models.world import WorldModels
    from brainldm.models.world.nets import TextEncoder, build

    torch.manual_seed(0)
    text = TextEncoder()
    models = WorldModels(vae=build("vae", tiny=True).eval(), unet=build("unet", tiny=True).eval(),
                         scheduler=build("scheduler"), text_encoder=text, image_encoder=None, cnn=None,
                         captioner=None, depth_estimator=None, uncond=text.unconditional())
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    captions = [["a red face in a room"]] * 2
    settings = SamplerSettings(num_inference_steps=4, guidance_scale=1.0, seed=5)
    series = report.strength_series(models, images, captions, [0.5, 1.0], settings)
    assert set(series) == {0.5, 1.0} and series[0.5].dtype == np.uint8 and series[0.5].shape[0] == 2
    again = report.strength_series(models, images[[1, 0]], captions, [0.5, 1.0], settings)
    np.testing.assert_array_equal(series[1.0], again[1.0])  # strength 1 starts from the same pure noise
    assert not np.array_equal(series[0.5], again[0.5])  # below it, each image's own z survives
