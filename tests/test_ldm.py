"""The latent-diffusion sampler on tiny models built here (no weights needed)."""

import numpy as np
import pytest
import torch

from brainldm.errors import BrainLDMError
from brainldm.models.ldm import LatentDiffusion, SamplerSettings, images_to_tensor, prepare_depth, sampler_settings, tensor_to_images
from brainldm.models.world.nets import build


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)


def test_image_conversion_round_trips(images):
    pixels = images_to_tensor(images)
    assert pixels.shape == (3, 3, 32, 32) and pixels.min() >= -1 and pixels.max() <= 1
    np.testing.assert_array_equal(tensor_to_images(pixels), images)
    with pytest.raises(BrainLDMError, match="uint8"):
        images_to_tensor(images.astype(np.float32))


def test_shapes_come_from_the_configs(ldm, images):
    z = ldm.encode(images)
    f = 2 ** (len(ldm.vae.config.block_out_channels) - 1)
    assert z.shape == (3, ldm.vae.config.latent_channels, 32 // f, 32 // f)
    assert ldm.decode(z).shape == images.shape and ldm.decode(z).dtype == np.uint8


def test_img2img_runs_strength_times_steps_and_is_reproducible(ldm, images):
    z, c, uncond = ldm.encode(images), torch.randn(3, 5, 12), torch.zeros(1, 5, 12)
    seen = []

    def run(seed, callback=None):
        return ldm.img2img(z, c, SamplerSettings(strength=0.6, num_inference_steps=10, guidance_scale=3.0),
                           uncond=uncond, generator=torch.Generator().manual_seed(seed), callback=callback)

    out = run(1, lambda i, t, latents: seen.append((i, t, latents.shape)))
    assert len(seen) == 6 and seen[-1][2] == z.shape
    assert seen[0][1] > seen[-1][1]  # timesteps go down
    torch.testing.assert_close(out, run(1))
    assert not torch.allclose(out, run(2))


def test_low_strength_stays_near_the_start_latents(ldm, images):
    z, c = ldm.encode(images), torch.randn(3, 5, 12)
    gen = torch.Generator().manual_seed(0)
    near = ldm.img2img(z, c, SamplerSettings(strength=0.1, num_inference_steps=20, guidance_scale=1.0), generator=gen)
    far = ldm.img2img(z, c, SamplerSettings(strength=1.0, num_inference_steps=20, guidance_scale=1.0), generator=gen)
    assert (near - z).abs().mean() < (far - z).abs().mean()


def test_text2img_with_and_without_depth():
    torch.manual_seed(0)
    vae = build("vae", tiny=True, sample_size=32).eval()
    unet = build("unet", tiny=True, sample_size=8, cross_attention_dim=12, in_channels=5).eval()
    ldm = LatentDiffusion(vae, unet, build("scheduler"))
    assert ldm.takes_depth
    c = torch.randn(2, 5, 12)
    depth = np.random.default_rng(0).random((2, 32, 32)).astype(np.float32)
    settings = SamplerSettings(num_inference_steps=3, guidance_scale=1.0)
    with_depth = ldm.text2img(c, settings, depth=depth, generator=torch.Generator().manual_seed(0))
    without = ldm.text2img(c, settings, generator=torch.Generator().manual_seed(0))
    assert with_depth.shape == (2, 4, 8, 8) and not torch.allclose(with_depth, without)


def test_prepare_depth_scales_each_map_to_minus_one_one():
    depth = np.stack([np.linspace(0.2, 0.4, 64).reshape(8, 8), np.full((8, 8), 0.5)])
    out = prepare_depth(depth, (4, 4))
    assert out.shape == (2, 1, 4, 4)
    assert out[0].min() == pytest.approx(-1, abs=0.05) and out[0].max() == pytest.approx(1, abs=0.05)
    assert torch.isfinite(out[1]).all()


@pytest.mark.parametrize("kwargs, match", [
    (dict(strength=0.0), "strength"),
    (dict(strength=1.5), "strength"),
    (dict(num_inference_steps=0), "num_inference_steps"),
    (dict(c=torch.randn(3, 5, 7)), "expected c of shape"),
    (dict(c=torch.randn(2, 5, 12)), "expected c of shape"),
    (dict(uncond=None), "uncond"),
    (dict(depth=np.zeros((3, 32, 32))), "no depth input"),
    (dict(strength=0.05, num_inference_steps=10), "runs no DDIM step"),
])
def test_sampler_errors_say_what_to_do(ldm, images, kwargs, match):
    args = dict(z=ldm.encode(images), c=torch.randn(3, 5, 12), strength=0.8, guidance_scale=5.0,
                num_inference_steps=4, uncond=torch.zeros(1, 5, 12))
    args.update(kwargs)
    sampling = {k: args.pop(k) for k in ("strength", "guidance_scale", "num_inference_steps")}
    with pytest.raises(BrainLDMError, match=match):
        ldm.img2img(settings=SamplerSettings(**sampling), **args)


@pytest.mark.parametrize("overrides, match", [
    (dict(guidance_scale=0.5), "guidance_scale must be >= 1"), (dict(eta=-1.0), "eta"),
    (dict(n_samples=0), "n_samples"), (dict(batch_size=2.5), "batch_size"), (dict(seed=-1), "seed"),
    (dict(noise_level="ddpm"), "noise_level"), (dict(strength=float("nan")), "strength"),
])
def test_sampler_settings_are_validated_once_when_made(overrides, match):
    with pytest.raises(BrainLDMError, match=match):
        SamplerSettings(**overrides)
    with pytest.raises(BrainLDMError, match="unknown sampler settings"):
        SamplerSettings().replace(steps=3)
    assert SamplerSettings().replace(strength=None, n_samples=2).n_samples == 2  # None keeps the default


def test_sampler_defaults_are_the_authors_on_nsd():
    nsd = sampler_settings("nsd")
    assert (nsd.strength, nsd.guidance_scale, nsd.num_inference_steps, nsd.n_samples, nsd.eta) == (0.8, 5.0, 50, 5, 0.0)
    assert sampler_settings("world", "encoding").guidance_scale == 1.0
    with pytest.raises(BrainLDMError, match="purpose"):
        sampler_settings("nsd", "training")


def test_latents_of_the_wrong_shape_are_refused(ldm):
    with pytest.raises(BrainLDMError, match="expected latents"):
        ldm.decode(torch.zeros(2, 3, 8, 8))
