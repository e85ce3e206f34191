"""LDM-internal features: img2img latents, the denoising trajectory and U-Net activations."""

import numpy as np
import pytest
import torch

from brainldm.errors import BrainLDMError
from brainldm.models.ldm import LatentDiffusion
from brainldm.models.ldm import SAMPLER_DEFAULTS, SamplerSettings, sampler_settings
from brainldm.features.unet import denoising_features, ldm_features, stage_steps, unet_layers
from brainldm.models.world.nets import build


@pytest.fixture(scope="module")
def ldm():
    torch.manual_seed(0)
    vae = build("vae", tiny=True, sample_size=32).eval()
    unet = build("unet", tiny=True, sample_size=8, cross_attention_dim=12, in_channels=4).eval()
    return LatentDiffusion(vae, unet, build("scheduler"))


@pytest.fixture(scope="module")
def inputs(ldm):
    images = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    return ldm.encode(images), torch.randn(5, 4, 12, generator=torch.Generator().manual_seed(1))


def test_layer_names_and_stages_come_from_the_config(ldm):
    n = len(ldm.unet.config.down_block_types)
    names = unet_layers(ldm.unet)
    assert names[:n] == tuple(f"down{i + 1}" for i in range(n)) and names[n] == "mid" and len(names) == 2 * n + 1
    assert stage_steps(8) == {"early": 0, "middle": 3, "late": 7}
    assert stage_steps(1) == {"early": 0, "middle": 0, "late": 0}


def test_trajectory_ends_at_z_c_and_matches_plain_img2img(ldm, inputs):
    z, c = inputs
    settings = SamplerSettings(strength=0.6, guidance_scale=1.0, num_inference_steps=5, seed=3, batch_size=2)
    out = denoising_features(ldm, z, c, None, settings, layers="all", steps="all", pool=2)
    n_steps = int(5 * 0.6)
    assert out["trajectory"].shape == (5, n_steps) + tuple(z.shape[1:])
    np.testing.assert_array_equal(out["trajectory"][:, -1], out["z_c"])
    assert (np.diff(out["timesteps"]) < 0).all() and out["timesteps"].size == n_steps
    # the same noise as img2img with the documented seed of each batch
    plain = [ldm.img2img(z[i:i + 2], c[i:i + 2], settings, generator=torch.Generator().manual_seed(3 * 1_000_003 + i))
             for i in range(0, 5, 2)]
    np.testing.assert_allclose(out["z_c"], torch.cat(plain).numpy(), atol=1e-5)
    # every layer at every step, pooled to at most 2 x 2
    for layer in unet_layers(ldm.unet):
        for step in range(n_steps):
            act = out[f"unet/{layer}/{step}"]
            assert act.shape[0] == 5 and act.shape[2] <= 2 and act.shape[3] <= 2
    assert not ldm.unet._forward_hooks and not ldm.unet._forward_pre_hooks
    assert all(not block._forward_hooks for block in ldm.unet.down_blocks)


def test_guided_runs_keep_the_conditional_half(ldm, inputs):
    """At the first step both runs feed the U-Net the same noisy latents: the conditional
    half of the guided batch is exactly the unguided activation."""
    z, c = inputs
    kwargs = dict(layers=["mid", "up1"], steps=[0])
    settings = SamplerSettings(strength=0.8, num_inference_steps=5, seed=0, guidance_scale=1.0)
    plain = denoising_features(ldm, z, c, None, settings, **kwargs)
    guided = denoising_features(ldm, z, c, torch.zeros(1, 4, 12), settings.replace(guidance_scale=4.0), **kwargs)
    for key in ("unet/mid/0", "unet/up1/0"):
        assert guided[key].shape == plain[key].shape
        np.testing.assert_allclose(guided[key], plain[key], atol=1e-5)
    assert "unet/mid/1" not in guided and "unet/down1/0" not in guided
    assert not np.allclose(guided["z_c"], plain["z_c"])


def test_bad_layers_and_steps_are_named(ldm, inputs):
    z, c = inputs
    with pytest.raises(BrainLDMError, match="U-Net layer"):
        denoising_features(ldm, z, c, None, SamplerSettings(guidance_scale=1.0, num_inference_steps=4),
                           layers=["bottleneck"])
    with pytest.raises(BrainLDMError, match="outside"):
        denoising_features(ldm, z, c, None, SamplerSettings(guidance_scale=1.0, num_inference_steps=4, strength=0.5),
                           layers="all", steps=[5])
    with pytest.raises(BrainLDMError, match="runs no DDIM step"):
        denoising_features(ldm, z, c, None, SamplerSettings(guidance_scale=1.0, num_inference_steps=4, strength=0.1))


def test_world_features_are_cached_and_follow_the_ids(world):
    from brainldm.models.loading import load_models

    models = load_models("world")
    ids = world.image_ids("test")[:6]
    settings = sampler_settings("world", "encoding", num_inference_steps=2, strength=1.0, batch_size=4)
    first = ldm_features(world, models, ids, settings, layers=["mid"])
    again = ldm_features(world, models, ids[::-1], settings, layers=["mid"])
    np.testing.assert_array_equal(again.z_c, first.z_c[::-1])
    assert first.z_c.shape == (6, int(np.prod(models.latent_shape())))
    assert first.trajectory.shape[:2] == (6, 2) and first.layers == ("mid",)
    assert first.activation("mid", "late").shape[0] == 6
    assert first.settings["guidance_scale"] == SAMPLER_DEFAULTS["encoding"]["world"].guidance_scale
    with pytest.raises(BrainLDMError, match="no activations"):
        first.activation("up1", "early")
