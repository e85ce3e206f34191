"""The authors' protocol on NSD, choice by choice (the fidelity table's tests)."""

import json

import numpy as np
import pytest

from brainldm.testing.fixtures import save_tiny_models


@pytest.fixture(scope="module")
def nsd_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    save_tiny_models(folder)
    # a scheduler config without clip_sample, like many saved with older diffusers
    config = folder / "CompVis/stable-diffusion-v1-4/scheduler/scheduler_config.json"
    settings = json.loads(config.read_text())
    settings.pop("clip_sample", None)
    config.write_text(json.dumps(settings))
    return folder


def test_nsd_models_follow_the_authors_layers_and_never_clip(nsd_models, monkeypatch):
    from brainldm.models.loading import load_models

    monkeypatch.setenv("BRAINLDM_MODELS", str(nsd_models))
    models = load_models("nsd", device="cpu", dtype="float32")
    assert models.ldm.scheduler.config.clip_sample is False  # diffusers' default would clip; CompVis never does
    images = np.random.default_rng(0).integers(0, 256, (2, 40, 40, 3), np.uint8)
    cnn = models.feature_nets["cnn"](images)
    # AlexNet features.5 and features.12 (max-pools after conv2 and conv5) and classifier.5, at 299 px
    assert models.feature_nets["cnn"].input_size == 299
    assert cnn["early"].shape == (2, 192 * 17 * 17) and cnn["middle"].shape == (2, 256 * 8 * 8)
    assert cnn["late"].shape == (2, 4096) and (cnn["late"] >= 0).all()
    clip = models.feature_nets["clip"](images)
    np.testing.assert_array_equal(clip["late"], clip["embedding"])  # CLIP "late" is image_embeds
    assert models.feature_nets["inception"](images)["late"].shape == (2, 2048)  # Inception's flatten
    # z decoded at 320 px (here the tiny U-Net's own size), img2img at the U-Net's generation size
    assert models.generation_resolution == models.ldm.unet.config.sample_size * models.ldm.vae_scale_factor


def test_the_ddim_noise_schedule_is_compvis_formula():
    """alphas_cumprod of SD's scaled-linear betas, as CompVis's make_beta_schedule builds them."""
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    betas = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=np.float64) ** 2
    np.testing.assert_allclose(scheduler.alphas_cumprod.numpy(), np.cumprod(1 - betas), rtol=1e-5)
    scheduler.set_timesteps(50)
    # CompVis's make_ddim_timesteps('uniform', 50, 1000) + 1: 1, 21, ..., 981
    np.testing.assert_array_equal(np.sort(scheduler.timesteps.numpy()), np.arange(0, 1000, 20) + 1)


def test_protocols_differ_where_the_table_says():
    from brainldm.fit.protocol import PROTOCOLS, protocol_for

    authors, ours = PROTOCOLS["authors"], PROTOCOLS["brainldm"]
    assert (authors.shared_noise, authors.init_latent, authors.noise_level, authors.ridge) == (
        True, "sample", "compvis", "authors")
    assert (ours.shared_noise, ours.init_latent, ours.noise_level, ours.ridge) == (
        False, "mean", "diffusers", "brainldm")
    assert protocol_for(None, "nsd") is authors and protocol_for(None, "world") is ours


def test_blip_features_follow_the_authors_input():
    """240 px, scaled to [0, 1] without normalisation, position embeddings interpolated."""
    import torch
    from transformers import BlipImageProcessor, BlipProcessor

    from brainldm.features.captions import BlipCaptionModel
    from brainldm.testing.fixtures import TINY, bert_tokenizer, tiny_blip

    torch.manual_seed(0)
    model = tiny_blip().eval()
    processor = BlipProcessor(image_processor=BlipImageProcessor(size={"height": TINY, "width": TINY}),
                              tokenizer=bert_tokenizer())
    images = np.random.default_rng(0).integers(0, 256, (2, 50, 50, 3), np.uint8)
    authors = BlipCaptionModel(model, processor)
    assert authors.feature_shape == ((240 // 8) ** 2 + 1, TINY)
    features = authors.features(images)
    assert features.shape == (2, ((240 // 8) ** 2 + 1) * TINY)
    seen = {}
    model.vision_model.register_forward_pre_hook(lambda m, a, k: seen.update(k), with_kwargs=True)
    authors.features(images)
    assert 0.0 <= float(seen["pixel_values"].min()) and float(seen["pixel_values"].max()) <= 1.0
    ours = BlipCaptionModel(model, processor, input_size=None)
    assert ours.features(images).shape == (2, ((TINY // 8) ** 2 + 1) * TINY)
    assert len(authors.generate(features)) == 2


@pytest.mark.slow  # builds and saves a ResNet-50 and an EfficientNet-B1 (about a minute)
def test_the_suites_distances_are_computed_when_their_weights_exist(nsd_models, monkeypatch):
    """EffNet-B1 and SwAV (ResNet-50 trunk saved by torch hub with "module." keys and a projection head)."""
    import torch
    import torchvision

    from brainldm.evaluate.metrics import correlation_distances, missing_distances
    from brainldm.models.loading import load_models

    monkeypatch.setenv("BRAINLDM_MODELS", str(nsd_models))
    without = load_models("nsd", device="cpu", dtype="float32")
    assert set(missing_distances(without)) == {"EffNet-B1", "SwAV"}
    torch.save(torchvision.models.efficientnet_b1(weights=None).state_dict(),
               nsd_models / "torchvision/efficientnet_b1-c27df63c.pth")
    trunk = {f"module.{k}": v for k, v in torchvision.models.resnet50(weights=None).state_dict().items()
             if not k.startswith("fc.")}
    trunk["module.projection_head.0.weight"] = torch.zeros(4, 2048)
    torch.save(trunk, nsd_models / "torchvision/swav_800ep_pretrain.pth.tar")
    models = load_models("nsd", device="cpu", dtype="float32")
    assert not missing_distances(models)
    images = np.random.default_rng(0).integers(0, 256, (3, 40, 40, 3), np.uint8)
    same = correlation_distances(models, images, images[:, None])
    other = correlation_distances(models, images, images[::-1, None].copy())
    for column in ("EffNet-B1", "SwAV"):
        np.testing.assert_allclose(same[column], 0.0, atol=1e-5)
        assert (other[column][[0, 2]] > 1e-4).all()


# --- what the protocol hides (chapter 3, section 4) -----------------------------------------

def test_protocol_effects_summaries():
    import pandas as pd

    from brainldm.book.fidelity import VARIANTS, ProtocolEffects

    rows = [{"variant": label, "column": column, "mean": 0.6, "change": change, "ci_low": change - 0.01,
             "ci_high": change + 0.01}
            for (label, _, _), changes in zip(VARIANTS, ([0.0, 0.0], [0.05, -0.02], [0.01, 0.0], [0.1, 0.2]))
            for column, change in zip(["CLIP early", "CNN late"], changes)]
    effects = ProtocolEffects(pd.DataFrame(rows), "subj01", 20, 5)
    assert effects.describe() == "subj01, X_zc of 20 test images, 5 samples per image"
    changes = effects.changes()
    assert list(changes.index) == [label for label, _, _ in VARIANTS]
    np.testing.assert_allclose(changes.loc[VARIANTS[3][0]], [0.1, 0.2])
    assert effects.shared_noise() == {"low": -0.02, "high": 0.05, "above": 1, "n": 2}


def test_protocol_effects_pair_every_variant_with_independent_noise(world, tiny_models):
    from brainldm.book.fidelity import VARIANTS, protocol_effects
    from brainldm.evaluate.metrics import IDENTIFICATION_COLUMNS
    from brainldm.models.ldm import SamplerSettings

    settings = SamplerSettings(num_inference_steps=2, n_samples=2, batch_size=8)
    columns = {k: IDENTIFICATION_COLUMNS[k] for k in ("CNN early", "CNN late")}
    effects = protocol_effects(world, tiny_models, settings, n_images=4, columns=columns)
    assert (effects.subject, effects.n_images, effects.n_samples) == ("subj01", 4, 2)
    table = effects.table
    assert list(table["variant"]) == [label for label, _, _ in VARIANTS for _ in columns]
    reference = table[table["variant"] == VARIANTS[0][0]]
    np.testing.assert_allclose(reference[["change", "ci_low", "ci_high"]], 0.0)  # against itself
    assert table["mean"].between(0, 1).all() and (table["ci_low"] <= table["change"]).all()
    # the changes are the paired differences of the means
    for (label, column), row in table.set_index(["variant", "column"]).iterrows():
        np.testing.assert_allclose(row["change"], row["mean"] - reference.set_index("column").loc[column, "mean"])
    best, per_sample = (table[table["variant"] == VARIANTS[k][0]]["mean"].to_numpy() for k in (3, 2))
    assert (best >= per_sample - 1e-12).all()  # each image's best sample scores at least its average one
