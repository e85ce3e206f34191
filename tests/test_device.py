"""Device and dtype: sampling stays on the device, gradients reach inputs only, samples batch freely."""

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

from brainldm.generate import minddiffuser as md
from brainldm.generate.reconstruction import reconstruct
from brainldm.models.ldm import SamplerSettings
from brainldm.settings import torch_device, torch_dtype
from brainldm.errors import BrainLDMError
from brainldm.features.layers import layer_slices, pooled_layers
from brainldm.generate.structural import CNN_LAYERS, optimise_latents

PACKAGE = str(Path(md.__file__).parent)
HOST = {"cpu", "numpy", "item", "tolist"}


class CountTransfers(TorchFunctionMode):
    """Counts host copies (``.cpu()``, ``.numpy()``, ``.item()``, ``.tolist()``) anywhere, and device moves
    (``.to(device)``) made by brainldm's own code."""

    def __init__(self):
        super().__init__()
        self.host, self.moves = 0, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in HOST:
            self.host += 1
        elif name == "to":
            import sys

            caller = sys._getframe(1).f_code.co_filename
            targets = list(args[1:]) + [kwargs.get("device")]
            if caller.startswith(PACKAGE) and any(isinstance(t, (str, torch.device)) for t in targets):
                self.moves += 1
        return func(*args, **kwargs)


def _counts(ldm, steps, z, c, uncond):
    noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), CountTransfers() as mode:
        ldm.sample(z, c, noise, SamplerSettings(strength=1.0, guidance_scale=3.0, num_inference_steps=steps),
                   uncond=uncond)
    return mode.host, mode.moves


def test_the_denoising_loop_makes_no_host_copy_nor_device_move(tiny_models):
    ldm = tiny_models.ldm
    z = torch.randn(2, *tiny_models.latent_shape())
    c = torch.randn(2, *tiny_models.c_shape())
    few, many = _counts(ldm, 2, z, c, tiny_models.uncond), _counts(ldm, 8, z, c, tiny_models.uncond)
    # what happens once per call (moving the inputs in) may happen; nothing may happen once per step
    assert few == many
    assert few[0] == 0


def test_refinement_and_plus_g_leave_every_weight_without_a_gradient(tiny_models):
    ldm, models = tiny_models.ldm, tiny_models
    z = torch.randn(2, *models.latent_shape())
    c = torch.randn(2, *models.c_shape())
    slices = layer_slices(models.feature_nets["clip"], ("early", "middle"), 2)
    target = torch.randn(2, slices["middle"].stop)
    md.refine(models, z, c, target, md.RefineSettings(n_iterations=2, pool=2),
              SamplerSettings(num_inference_steps=4, strength=0.5, guidance_scale=2.0))
    net = models.feature_nets["cnn"]
    with torch.no_grad():
        targets = pooled_layers(net, ldm.decode_pixels(torch.randn_like(z)), CNN_LAYERS, pool=2)
    optimise_latents(ldm, net, z, targets, pool=2, iterations=2)
    modules = [ldm.unet, ldm.vae, *[v for v in models.extras.values() if isinstance(v, torch.nn.Module)]]
    parameters = [p for module in modules for p in module.parameters()]
    assert parameters and all(p.grad is None and not p.requires_grad for p in parameters)


def test_samples_batch_freely_and_the_start_latent_is_encoded_once(tiny_models, monkeypatch):
    ldm = tiny_models.ldm
    z = torch.randn(3, *tiny_models.latent_shape())
    c = torch.randn(3, *tiny_models.c_shape())
    calls = []
    encode = type(ldm).encode
    monkeypatch.setattr(type(ldm), "encode", lambda self, *a, **k: calls.append(1) or encode(self, *a, **k))
    settings = SamplerSettings(strength=0.5, guidance_scale=2.0, num_inference_steps=4, n_samples=2, seed=3)
    one = reconstruct(ldm, z, c, tiny_models.uncond, settings.replace(batch_size=1))
    assert len(calls) == 1  # X_z re-encoded once for every sample of every image
    many = reconstruct(ldm, z, c, tiny_models.uncond, settings.replace(batch_size=6))
    fewer = reconstruct(ldm, z[:2], c[:2], tiny_models.uncond, settings.replace(batch_size=4, n_samples=1))
    for name in ("X_zc", "X_c"):
        assert one[name].shape == (3, 2, *one["X_z"].shape[1:])
        assert np.abs(one[name].astype(int) - many[name]).max() <= 1  # batching changes rounding at most
        assert np.abs(fewer[name][:, 0].astype(int) - one[name][:2, 0]).max() <= 1  # sample k keeps its noise


def test_device_and_dtype_come_from_the_argument_then_the_environment(monkeypatch):
    monkeypatch.delenv("BRAINLDM_DEVICE", raising=False)
    monkeypatch.delenv("BRAINLDM_DTYPE", raising=False)
    if not torch.cuda.is_available():
        assert torch_device() == torch.device("cpu") and torch_dtype() == torch.float32
    monkeypatch.setenv("BRAINLDM_DTYPE", "bfloat16")
    assert torch_dtype() == torch.bfloat16 and torch_dtype("float16") == torch.float16
    monkeypatch.setenv("BRAINLDM_DEVICE", "cpu")
    assert torch_device() == torch.device("cpu")
    with pytest.raises(BrainLDMError, match="BRAINLDM_DTYPE"):
        torch_dtype("float17")
    monkeypatch.setenv("BRAINLDM_DEVICE", "gpu7")
    with pytest.raises(BrainLDMError, match="BRAINLDM_DEVICE"):
        torch_device()


def test_world_models_run_in_bfloat16(monkeypatch):
    from brainldm.models.loading import load_models

    models = load_models("world", device="cpu", dtype="bfloat16")
    images = np.random.default_rng(0).integers(0, 256, (2, models.resolution, models.resolution, 3), np.uint8)
    z = models.ldm.encode(images)
    c = models.text_encoder.encode_captions([["a red face on a beach"]] * 2)
    out = reconstruct(models.ldm, z, c, models.uncond, SamplerSettings(num_inference_steps=2, n_samples=1))
    assert out["X_zc"].shape == (2, 1, *images.shape[1:])
    feats = models.feature_nets["clip"](images)
    assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in feats.values())


def test_img2img_runs_at_the_generation_size_from_z_decoded_smaller(tiny_models):
    """The authors' path: z decoded at 4 x 40 x 40, X_z resized and re-encoded to 4 x 64 x 64 for img2img."""
    ldm = tiny_models.ldm
    f = ldm.vae_scale_factor
    z = torch.randn(1, ldm.latent_channels, 40, 40)
    c = torch.randn(1, *tiny_models.c_shape())
    seen = []
    sample = type(ldm).sample

    def spy(self, z0, *args, **kwargs):
        seen.append(None if z0 is None else tuple(z0.shape))
        return sample(self, z0, *args, **kwargs)

    type(ldm).sample = spy
    try:
        out = reconstruct(ldm, z, c, tiny_models.uncond, SamplerSettings(
            strength=0.5, guidance_scale=1.0, num_inference_steps=2, n_samples=1, size=64 * f))
    finally:
        type(ldm).sample = sample
    assert out["X_z"].shape == (1, 40 * f, 40 * f, 3)
    assert seen[0] == (1, ldm.latent_channels, 64, 64)
    assert out["X_zc"].shape == out["X_c"].shape == (1, 1, 64 * f, 64 * f, 3)


def test_the_authors_noise_compvis_level_and_shared_across_images(tiny_models, monkeypatch):
    from diffusers import DDIMScheduler

    from brainldm.fit.protocol import Protocol

    ldm = tiny_models.ldm
    sd = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, steps_offset=1,
                       clip_sample=False, set_alpha_to_one=False)
    monkeypatch.setattr(ldm, "scheduler", sd)
    noised = []
    add_noise = DDIMScheduler.add_noise
    monkeypatch.setattr(DDIMScheduler, "add_noise", lambda self, x, n, t: noised.append(int(t[0])) or add_noise(
        self, x, n, t))
    _, timesteps = ldm.timesteps(0.8, 50)
    assert int(timesteps[0]) == 781  # the first DDIM step run (diffusers and CompVis agree)
    z = torch.randn(2, *tiny_models.latent_shape())
    c = torch.randn(1, *tiny_models.c_shape()).expand(2, -1, -1)
    z = z[:1].expand(2, -1, -1, -1)  # two identical images
    settings = SamplerSettings(strength=0.8, num_inference_steps=50, guidance_scale=1.0, n_samples=2)
    authors = reconstruct(ldm, z, c, tiny_models.uncond, settings, protocol=Protocol.authors(), which=("X_z", "X_zc"))
    assert noised and set(noised) == {801}  # CompVis's stochastic_encode noises to DDIM index 40 of 50
    np.testing.assert_array_equal(authors["X_zc"][0], authors["X_zc"][1])  # sample k: the same noise for all
    assert not np.array_equal(authors["X_zc"][0, 0], authors["X_zc"][0, 1])
    ours = reconstruct(ldm, z, c, tiny_models.uncond, settings.replace(n_samples=1), which=("X_z", "X_zc"))
    assert set(noised[-1:]) == {781} and not np.array_equal(ours["X_zc"][0], ours["X_zc"][1])
