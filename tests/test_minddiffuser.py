"""MindDiffuser stage 2: low-level features, their decoding, the loss, and the optimisation of z and c."""

import numpy as np
import pandas as pd
import pytest
import torch

from brainldm.errors import BrainLDMError, ParameterError
from brainldm.evaluate.paired import describe_changes, paired_differences
from brainldm.features.layers import layer_slices, pooled_layers
from brainldm.generate import minddiffuser as md
from brainldm.generate.optimise import feature_loss
from brainldm.models.ldm import SamplerSettings


def test_structure_features_pool_and_differentiate(tiny_models):
    net = tiny_models.feature_nets["clip"]
    pixels = torch.zeros(2, 3, net.input_size, net.input_size, requires_grad=True)
    feats = pooled_layers(net, pixels, ("early", "middle"), pool=2)
    raw = net.forward(pixels.detach())
    for layer in ("early", "middle"):
        assert feats[layer].shape == (2, raw[layer].shape[1] * 4)  # channels x 2 x 2
    sum(f.sum() for f in feats.values()).backward()
    assert pixels.grad.abs().sum() > 0
    full = pooled_layers(net, pixels.detach(), ("early",), pool=None)
    assert full["early"].shape[1] == raw["early"][0].numel()
    slices = layer_slices(net, ("early", "middle"), pool=2)
    assert slices["early"] == slice(0, feats["early"].shape[1])
    assert slices["middle"].stop == feats["early"].shape[1] + feats["middle"].shape[1]
    with pytest.raises(BrainLDMError, match="no layer"):
        pooled_layers(net, pixels.detach(), ("nope",))


def test_structural_loss_known_values():
    rng = np.random.default_rng(0)
    target = torch.as_tensor(rng.standard_normal((3, 10)), dtype=torch.float32)
    slices = {"a": slice(0, 4), "b": slice(4, 10)}
    targets = {layer: target[:, cols] for layer, cols in slices.items()}
    mean_of_layers = {"a": 0.5, "b": 0.5}  # MindDiffuser averages its layers
    same = {"a": target[:, :4], "b": target[:, 4:]}
    for kind in ("correlation", "mse"):
        np.testing.assert_allclose(feature_loss(same, targets, mean_of_layers, kind).numpy(), 0, atol=1e-6)
    scaled = {k: 3 * v + 1 for k, v in same.items()}  # a correlation ignores scale and offset
    np.testing.assert_allclose(feature_loss(scaled, targets, mean_of_layers, "correlation").numpy(), 0, atol=1e-6)
    assert (feature_loss(scaled, targets, mean_of_layers, "mse") > 1).all()
    flipped = {k: -v for k, v in same.items()}
    np.testing.assert_allclose(feature_loss(flipped, targets, mean_of_layers, "correlation").numpy(), 2, atol=1e-6)
    standard = {layer: (torch.ones(cols.stop - cols.start), 2 * torch.ones(cols.stop - cols.start))
                for layer, cols in slices.items()}
    np.testing.assert_allclose(feature_loss(same, targets, mean_of_layers, "mse", standard).numpy(), 0, atol=1e-6)
    # standardising changes the mse: (x - 1) / 2 has a quarter of the squared error and of the variance
    np.testing.assert_allclose(feature_loss(scaled, targets, mean_of_layers, "mse", standard).numpy(),
                               feature_loss(scaled, targets, mean_of_layers, "mse").numpy(), rtol=1e-5)
    with pytest.raises(BrainLDMError):
        feature_loss(same, targets, mean_of_layers, "l1")


def test_refine_settings_are_checked_once():
    settings = md.RefineSettings(optimize=["z"], layers=["early"], roi="early")
    assert settings.optimize == ("z",) and settings.layers == ("early",) and settings.roi == ("early",)
    assert settings.replace(lr=None) == settings and settings.replace(lr=0.5).lr == 0.5
    assert str(settings).startswith("stage2 settings: optimize=('z',), through=sampler, n_iterations=8")
    with pytest.raises(ParameterError, match="decoder"):
        md.RefineSettings(through="decoder")  # c does not reach the VAE decoder
    with pytest.raises(ParameterError, match="optimize"):
        md.RefineSettings(optimize=("w",))
    with pytest.raises(ParameterError, match="n_iterations"):
        md.RefineSettings(n_iterations=-1)
    with pytest.raises(ParameterError, match="twice"):
        md.RefineSettings(optimize=("z", "z"))
    with pytest.raises(ParameterError, match="unknown stage2 settings"):
        settings.replace(iterations=3)


def _batch(models, n=2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn((n,) + models.latent_shape(), generator=generator)
    c = models.uncond.expand(n, -1, -1) + 0.1 * torch.randn((n,) + models.c_shape(), generator=generator)
    return z, c


def _target_of(models, z, slices):
    """The structural features of the image that latents ``z`` decode to."""
    with torch.no_grad():
        feats = pooled_layers(models.feature_nets["clip"], models.ldm.decode_pixels(z), ("early", "middle"), 2)
    return torch.cat([feats[layer] for layer in slices], 1)


def test_refine_moves_towards_the_target(tiny_models):
    slices = layer_slices(tiny_models.feature_nets["clip"], ("early", "middle"), 2)
    z, c = _batch(tiny_models)
    target = _target_of(tiny_models, z, slices)
    start = z + 0.8 * torch.randn(z.shape, generator=torch.Generator().manual_seed(1))
    common = md.RefineSettings(pool=2, through="decoder", optimize=("z",), lr=0.1)
    still = md.refine(tiny_models, start, c, target, common.replace(n_iterations=0))
    np.testing.assert_array_equal(still["before"], still["after"])
    assert still["loss"].shape == (1, 2)
    moved = md.refine(tiny_models, start, c, target, common.replace(n_iterations=8))
    assert moved["loss"].shape == (9, 2)
    assert (moved["loss"][-1] < moved["loss"][0]).all()
    assert not np.array_equal(moved["after"], moved["before"])


def test_refine_through_the_sampler_reaches_c(tiny_models):
    slices = layer_slices(tiny_models.feature_nets["clip"], ("early", "middle"), 2)
    z, c = _batch(tiny_models, n=1)
    target = _target_of(tiny_models, z, slices)
    settings = md.RefineSettings(pool=2, through="sampler", n_iterations=2, lr=0.5, optimize=("c",))
    sampler = SamplerSettings(num_inference_steps=2, strength=0.5, guidance_scale=2.0)
    only_c = md.refine(tiny_models, z, c, target, settings, sampler)
    np.testing.assert_array_equal(only_c["z"], z.numpy())  # z is not a variable
    assert not np.allclose(only_c["loss"][-1], only_c["loss"][0])  # but changing c changed the image
    again = md.refine(tiny_models, z, c, target, settings, sampler)
    np.testing.assert_array_equal(again["after"], only_c["after"])  # fixed noise: reproducible
    with pytest.raises(BrainLDMError, match="decoder"):
        md.refine(tiny_models, z, c, target, md.RefineSettings(through="decoder", optimize=("z", "c")))
    with pytest.raises(BrainLDMError, match="optimize"):
        md.refine(tiny_models, z, c, target, md.RefineSettings(optimize=("w",)))


def test_stage2_end_to_end_on_a_small_world(world, tiny_models):
    settings = md.RefineSettings(n_iterations=1, pool=2)
    sampler = SamplerSettings(strength=0.8, guidance_scale=2.0, num_inference_steps=2, n_samples=1, seed=0)
    result = md.minddiffuser_reconstructions(world, tiny_models, settings, sampler, n_images=2)
    np.testing.assert_array_equal(result.ids, world.image_ids("test")[:2])
    side = tiny_models.resolution
    for name in ("X_zc", "stage 2 start", "stage 2"):
        assert result.images[name].shape == (2, side, side, 3) and result.images[name].dtype == np.uint8
    assert result.ddim_steps == 1  # int(2 * 0.8)
    assert result.unet_passes == {"forward": 4, "backward": 2}  # 1 step x 2 (guidance) x (1 + 1) passes
    assert result.decoded.predicted.shape == (len(world.image_ids("test")), layer_slices(
        tiny_models.feature_nets["clip"], md.STRUCTURE_LAYERS, 2)["middle"].stop)
    again = md.minddiffuser_reconstructions(world, tiny_models, settings, sampler, n_images=2)
    np.testing.assert_array_equal(again.images["stage 2"], result.images["stage 2"])
    assert "1 Adam iterations" in result.describe() and list(result.panels(1)) == [
        "seen", "X_z", "X_zc (stage 1)", "stage 2 start", "stage 2"]
    scores = md.stage2_scores(tiny_models, result.seen, result.images)
    assert set(scores.table["metric"]) == {"CLIP cosine", "SSIM", "PixCorr"}
    assert len(scores.per_image.query("method == 'stage 2' and metric == 'SSIM'")) == 2
    change = scores.change("stage 2", "stage 2 start").set_index("metric")
    ssim = scores.per_image.query("metric == 'SSIM'").pivot(index="image", columns="method", values="score")
    assert change.loc["SSIM", "change"] == pytest.approx((ssim["stage 2"] - ssim["stage 2 start"]).mean())
    table = md.structure_decoding(world, tiny_models, settings)
    assert list(table["feature"]) == ["image encoder, early", "image encoder, middle", "z (chapter 2)"]


def test_stage2_variants_change_one_thing_each(world, tiny_models):
    settings = md.RefineSettings(n_iterations=1, pool=2)
    sampler = SamplerSettings(strength=0.8, guidance_scale=2.0, num_inference_steps=2, n_samples=1, seed=0)
    variants = md.stage2_variants(world, tiny_models, settings, sampler, n_images=2)
    assert list(variants.runs) == ["stage 2", "oracle", "VAE decoder only"]
    assert variants.runs["oracle"].settings.target == "true"
    assert variants.runs["VAE decoder only"].unet_passes == {"forward": 0, "backward": 0}
    assert list(variants.table().index) == list(variants.runs) and variants.table().shape[1] == 3
    assert "21,000 U-Net forward" in variants.cost()  # the authors' 300 iterations x 35 steps x 2
    assert len(variants.panels(2)) == 4
    assert list(md.stage2_variants(world, tiny_models, settings, sampler, n_images=2, oracle=False).runs) == [
        "stage 2", "VAE decoder only"]


def test_clip_cosine_and_paired_differences(tiny_models, world):
    seen = world.images(world.image_ids("test")[:3])
    np.testing.assert_allclose(md.clip_cosine(tiny_models, seen, seen), 1, atol=1e-6)
    per_image = pd.DataFrame({"method": ["a"] * 3 + ["b"] * 3, "metric": "SSIM", "image": [0, 1, 2] * 2,
                              "score": [0.5, 0.6, 0.7, 0.4, 0.6, 0.9]})
    diff = paired_differences(per_image, baseline="a").set_index("metric").loc["SSIM"]
    assert diff["change"] == pytest.approx(0.1 / 3)
    assert diff["improved"] == pytest.approx(1 / 3)
    assert "b did not clearly change SSIM" in describe_changes(paired_differences(per_image, baseline="a"))
    assert describe_changes(paired_differences(per_image, baseline="a")).endswith("higher in 1 of 3 images)")
