"""MindDiffuser stage 2: low-level features, their decoding, the loss, and the optimisation of z and c."""

import numpy as np
import pytest
import torch

from brainldm.generate import minddiffuser as md
from brainldm.errors import BrainLDMError


def test_vit_tokens_are_laid_on_their_grid():
    tokens = torch.arange(2 * 5 * 3, dtype=torch.float32).reshape(2, 5, 3)  # CLS + 2 x 2 patches, 3 dims
    grid = md._as_map(tokens)
    assert grid.shape == (2, 3, 2, 2)
    # patch k (token k + 1) sits at row k // 2, column k % 2
    for k in range(4):
        np.testing.assert_array_equal(grid[:, :, k // 2, k % 2], tokens[:, k + 1])
    assert md._as_map(torch.zeros(2, 7)) is None


def test_structure_features_pool_and_differentiate(tiny_models):
    net = tiny_models.feature_nets["clip"]
    pixels = torch.zeros(2, 3, net.input_size, net.input_size, requires_grad=True)
    feats = md.structure_features(tiny_models, pixels, ("early", "middle"), pool=2)
    raw = net.forward(pixels.detach())
    for layer in ("early", "middle"):
        assert feats[layer].shape == (2, raw[layer].shape[1] * 4)  # channels x 2 x 2
    sum(f.sum() for f in feats.values()).backward()
    assert pixels.grad.abs().sum() > 0
    full = md.structure_features(tiny_models, pixels.detach(), ("early",), pool=None)
    assert full["early"].shape[1] == raw["early"][0].numel()
    slices = md.layer_slices(tiny_models, ("early", "middle"), pool=2)
    assert slices["early"] == slice(0, feats["early"].shape[1])
    assert slices["middle"].stop == feats["early"].shape[1] + feats["middle"].shape[1]
    with pytest.raises(BrainLDMError, match="no layer"):
        md.structure_features(tiny_models, pixels.detach(), ("nope",))


def test_structural_loss_known_values():
    rng = np.random.default_rng(0)
    target = torch.as_tensor(rng.standard_normal((3, 10)), dtype=torch.float32)
    slices = {"a": slice(0, 4), "b": slice(4, 10)}
    same = {"a": target[:, :4], "b": target[:, 4:]}
    for kind in ("correlation", "mse"):
        np.testing.assert_allclose(md.structural_loss(same, target, slices, kind).numpy(), 0, atol=1e-6)
    scaled = {k: 3 * v + 1 for k, v in same.items()}  # a correlation ignores scale and offset
    np.testing.assert_allclose(md.structural_loss(scaled, target, slices).numpy(), 0, atol=1e-6)
    assert (md.structural_loss(scaled, target, slices, "mse") > 1).all()
    flipped = {k: -v for k, v in same.items()}
    np.testing.assert_allclose(md.structural_loss(flipped, target, slices).numpy(), 2, atol=1e-6)
    mean, scale = torch.ones(10), 2 * torch.ones(10)
    np.testing.assert_allclose(md.structural_loss(same, target, slices, "mse", mean, scale).numpy(), 0, atol=1e-6)
    with pytest.raises(BrainLDMError):
        md.structural_loss(same, target, slices, "l1")


def _batch(models, n=2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn((n,) + models.latent_shape(), generator=generator)
    c = models.uncond.expand(n, -1, -1) + 0.1 * torch.randn((n,) + models.c_shape(), generator=generator)
    return z, c


def _target_of(models, z, slices):
    """The structural features of the image that latents ``z`` decode to."""
    with torch.no_grad():
        feats = md.structure_features(models, models.ldm.decode_pixels(z), ("early", "middle"), 2)
    return torch.cat([feats[layer] for layer in slices], 1)


def test_refine_moves_towards_the_target(tiny_models):
    slices = md.layer_slices(tiny_models, ("early", "middle"), 2)
    z, c = _batch(tiny_models)
    target = _target_of(tiny_models, z, slices)
    start = z + 0.8 * torch.randn(z.shape, generator=torch.Generator().manual_seed(1))
    common = dict(slices=slices, pool=2, through="decoder", optimize=("z",), lr=0.1, progress=False)
    still = md.refine(tiny_models.ldm, tiny_models, start, c, tiny_models.uncond, target, n_iterations=0, **common)
    np.testing.assert_array_equal(still["before"], still["after"])
    assert still["loss"].shape == (1, 2)
    moved = md.refine(tiny_models.ldm, tiny_models, start, c, tiny_models.uncond, target, n_iterations=8, **common)
    assert moved["loss"].shape == (9, 2)
    assert (moved["loss"][-1] < moved["loss"][0]).all()
    assert not np.array_equal(moved["after"], moved["before"])


def test_refine_through_the_sampler_reaches_c(tiny_models):
    slices = md.layer_slices(tiny_models, ("early", "middle"), 2)
    z, c = _batch(tiny_models, n=1)
    target = _target_of(tiny_models, z, slices)
    common = dict(slices=slices, pool=2, through="sampler", n_iterations=2, lr=0.5, num_inference_steps=2,
                  strength=0.5, guidance_scale=2.0, progress=False)
    only_c = md.refine(tiny_models.ldm, tiny_models, z, c, tiny_models.uncond, target, optimize=("c",), **common)
    np.testing.assert_array_equal(only_c["z"], z.numpy())  # z is not a variable
    assert not np.allclose(only_c["loss"][-1], only_c["loss"][0])  # but changing c changed the image
    again = md.refine(tiny_models.ldm, tiny_models, z, c, tiny_models.uncond, target, optimize=("c",), **common)
    np.testing.assert_array_equal(again["after"], only_c["after"])  # fixed noise: reproducible
    with pytest.raises(BrainLDMError, match="decoder"):
        md.refine(tiny_models.ldm, tiny_models, z, c, tiny_models.uncond, target, slices, through="decoder",
                  optimize=("z", "c"), progress=False)
    with pytest.raises(BrainLDMError, match="optimize"):
        md.refine(tiny_models.ldm, tiny_models, z, c, tiny_models.uncond, target, slices, optimize=("w",),
                  progress=False)


def test_stage2_end_to_end_on_a_small_world(world, tiny_models):
    ids, images, info = md.minddiffuser_reconstructions(
        world, tiny_models, n_images=2, n_iterations=1, pool=2, strength=0.8, guidance_scale=2.0,
        num_inference_steps=2, n_samples=1, seed=0)
    np.testing.assert_array_equal(ids, world.image_ids("test")[:2])
    side = tiny_models.resolution
    for name in ("X_zc", "stage 2 start", "stage 2"):
        assert images[name].shape == (2, side, side, 3) and images[name].dtype == np.uint8
    assert info["ddim_steps"] == 1  # int(2 * 0.8)
    assert info["unet_passes"] == {"forward": 4, "backward": 2}  # 1 step x 2 (guidance) x (1 + 1) passes
    assert info["decoded"].predicted.shape == (len(world.image_ids("test")), md.layer_slices(
        tiny_models, md.STRUCTURE_LAYERS, 2)["middle"].stop)
    again = md.minddiffuser_reconstructions(world, tiny_models, n_images=2, n_iterations=1, pool=2, strength=0.8,
                                            guidance_scale=2.0, num_inference_steps=2, n_samples=1, seed=0)
    np.testing.assert_array_equal(again[1]["stage 2"], images["stage 2"])
    table, per_image = md.stage2_scores(tiny_models, world.images(ids), images)
    assert set(table["metric"]) == {"CLIP cosine", "SSIM", "PixCorr"}
    assert len(per_image["stage 2"]["SSIM"]) == 2


def test_clip_cosine_and_paired_differences(tiny_models, world):
    seen = world.images(world.image_ids("test")[:3])
    np.testing.assert_allclose(md.clip_cosine(tiny_models, seen, seen), 1, atol=1e-6)
    per_image = {"a": {"SSIM": np.array([0.5, 0.6, 0.7])}, "b": {"SSIM": np.array([0.4, 0.6, 0.9])}}
    diff = md.paired_differences(per_image, "b", "a").set_index("metric").loc["SSIM"]
    assert diff["change"] == pytest.approx(0.1 / 3)
    assert diff["improved"] == pytest.approx(1 / 3)
