"""Latent diffusion sampling: encode, decode, img2img and text2img with any VAE, U-Net and scheduler.

The sampler reads every shape from the models' configs, so the same code drives
the embedded world models and Stable Diffusion's components on NSD.

``img2img`` follows diffusers' ``StableDiffusionImg2ImgPipeline``: with ``strength``
s and N steps, the clean latent is noised to the ``int(N * s)``-th last DDIM
timestep and denoised from there, with classifier-free guidance
``eps = eps_uncond + g * (eps_cond - eps_uncond)``. This is the ``X_zc``
reconstruction of Takagi & Nishimoto (DDIM 50 steps, s = 0.8, g = 5 with SD 1.4).
"""

import dataclasses
import inspect
import math

import numpy as np
import torch
import torch.utils.checkpoint

from brainldm.errors import BrainLDMError, ParameterError

__all__ = ["LatentDiffusion", "SamplerSettings", "SAMPLER_DEFAULTS", "sampler_settings", "check_sampling", "images_to_tensor", "tensor_to_images", "prepare_depth", "resize", "to_module", "shifted_scheduler"]


def check_sampling(strength, num_inference_steps):
    """Raise a clear :class:`ParameterError` for a strength or step count that cannot sample."""
    if not 0.0 < float(strength) <= 1.0:  # NaN fails too
        raise ParameterError(f"strength must be in (0, 1], found {strength}; 0.8 is Takagi's value")
    if int(num_inference_steps) < 1:
        raise ParameterError(f"num_inference_steps must be at least 1, found {num_inference_steps}")


@dataclasses.dataclass(frozen=True)
class SamplerSettings:
    """How the DDIM sampler runs: one frozen value, validated once when it is made.

    Attributes
    ----------
    strength : float in (0, 1]
        img2img noises ``z`` to the ``int(num_inference_steps * strength)``-th last DDIM timestep
        (1 starts from pure noise). Takagi & Nishimoto: 0.8.
    guidance_scale : float >= 1
        Classifier-free guidance (1 runs the conditional branch only). Takagi & Nishimoto: 5.0.
    num_inference_steps : int >= 1
        DDIM steps of the full schedule. Takagi & Nishimoto: 50.
    n_samples : int >= 1
        Samples drawn per image. Takagi & Nishimoto: 5.
    eta : float >= 0
        DDIM's stochasticity (0 is deterministic, as in the authors' code); its noise is seeded
        with ``seed``.
    seed : int >= 0
        Seeds the starting noise of every (image, sample) (see
        :func:`brainldm.generate.reconstruction.sample_noise`).
    batch_size : int >= 1
        Rows (image, sample) denoised together: it changes speed and memory, never the result.
    noise_level : {"diffusers", "compvis"}
        Noise ``z`` to the first timestep run (diffusers' img2img), or to the DDIM timestep one
        step above it, as CompVis's ``stochastic_encode`` does in the authors' code.
    size : int, optional
        Pixels of the generated images (``z`` is resized and re-encoded to it before img2img);
        None: the size of the decoded ``z``.
    """

    strength: float = 0.8
    guidance_scale: float = 5.0
    num_inference_steps: int = 50
    n_samples: int = 5
    eta: float = 0.0
    seed: int = 0
    batch_size: int = 64
    noise_level: str = "diffusers"
    size: int = None

    def __post_init__(self):
        for name in ("num_inference_steps", "n_samples", "seed", "batch_size", "size"):
            value = getattr(self, name)
            if value is None and name == "size":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < (name != "seed"):
                raise ParameterError(f"sampler setting {name} must be an integer >= {int(name != 'seed')}, "
                                     f"found {value!r}")
        for name in ("strength", "guidance_scale", "eta"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value):
                raise ParameterError(f"sampler setting {name} must be a finite number, found {value!r}")
        check_sampling(self.strength, self.num_inference_steps)
        if self.guidance_scale < 1.0:
            raise ParameterError(f"guidance_scale must be >= 1 (1: no guidance), found {self.guidance_scale}; "
                                 "Takagi & Nishimoto use 5.0")
        if self.eta < 0:
            raise ParameterError(f"eta must be >= 0 (0: deterministic DDIM), found {self.eta}")
        if self.noise_level not in ("diffusers", "compvis"):
            raise ParameterError(f"noise_level must be 'diffusers' or 'compvis', found {self.noise_level!r}")
        if int(self.num_inference_steps * self.strength) < 1:
            raise ParameterError(f"strength {self.strength} with {self.num_inference_steps} steps runs no DDIM "
                                 "step; raise one of them")

    def replace(self, **overrides):
        """A copy with the ``overrides`` that are not None (an unknown name is a :class:`ParameterError`)."""
        known = {field.name for field in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ParameterError(f"unknown sampler settings {unknown}; valid: {sorted(known)}")
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def as_dict(self):
        """The settings as a plain dict (for cache keys and printing)."""
        return dataclasses.asdict(self)


#: The sampler's defaults by purpose and dataset. NSD reconstruction: Takagi & Nishimoto's
#: (DDIM 50 steps, strength 0.8, guidance 5, 5 samples per image; ``codes/diffusion_sd1/
#: diffusion_decoding.py``). The world: fewer steps and samples, so that the book builds on a CPU.
#: Encoding features (chapters 9-12) are one sample per image; on the world without guidance
#: and with 5 steps (4 run at strength 0.8), so that 1,100 images take about 30 s of one core.
SAMPLER_DEFAULTS = {
    "reconstruction": {"nsd": SamplerSettings(), "world": SamplerSettings(num_inference_steps=10, n_samples=2)},
    "encoding": {"nsd": SamplerSettings(n_samples=1),
                 "world": SamplerSettings(guidance_scale=1.0, num_inference_steps=5, n_samples=1)},
}


def sampler_settings(dataset, purpose="reconstruction", **overrides):
    """The :data:`SAMPLER_DEFAULTS` of ``purpose`` on ``dataset`` with the ``overrides`` that are not None.

    Examples
    --------
    >>> sampler_settings("nsd").num_inference_steps
    50
    >>> sampler_settings("world", strength=0.5).strength
    0.5
    """
    if purpose not in SAMPLER_DEFAULTS:
        raise ParameterError(f"unknown sampler purpose {purpose!r}; valid: {sorted(SAMPLER_DEFAULTS)}")
    defaults = SAMPLER_DEFAULTS[purpose]
    if dataset not in defaults:
        raise ParameterError(f"unknown dataset {dataset!r}; valid: {sorted(defaults)}")
    return defaults[dataset].replace(**overrides)


def images_to_tensor(images):
    """Convert uint8 images to a float tensor in [-1, 1].

    Parameters
    ----------
    images : uint8 array of shape (n, H, W, 3)

    Returns
    -------
    pixels : float32 tensor of shape (n, 3, H, W)
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise BrainLDMError(f"expected uint8 images of shape (n, H, W, 3), found {images.dtype} "
                         f"{images.shape}; convert with np.asarray(images, np.uint8)")
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def resize(pixels, size):
    """Resize images or maps (n, channels, H, W) to ``size`` (antialiased bilinear): the one resize of the package.

    Parameters
    ----------
    pixels : float tensor of shape (n, channels, H, W)
        On any device, in any floating dtype (differentiable).
    size : int or (height, width)
        An int makes square images.

    Returns
    -------
    resized : tensor of shape (n, channels, height, width), ``pixels`` itself when already that size
    """
    height, width = (int(size), int(size)) if np.ndim(size) == 0 else (int(size[0]), int(size[1]))
    if tuple(pixels.shape[-2:]) == (height, width):
        return pixels
    return torch.nn.functional.interpolate(pixels, size=(height, width), mode="bilinear", antialias=True,
                                           align_corners=False)


def to_module(tensor, module):
    """``tensor`` on ``module``'s device, in its (floating) dtype: the cast at a module's input boundary."""
    parameter = next(module.parameters())
    return tensor.to(parameter.device, parameter.dtype)


def tensor_to_images(pixels):
    """Convert a float tensor in [-1, 1] of shape (n, 3, H, W) to uint8 images (n, H, W, 3)."""
    pixels = pixels.detach().float().clamp(-1, 1).add(1).mul(127.5).round()
    return pixels.permute(0, 2, 3, 1).to(torch.uint8).cpu().numpy()


def prepare_depth(depth, size):
    """Resize depth maps to the latent grid and scale each to [-1, 1], as SD 2 depth does.

    Parameters
    ----------
    depth : float array or tensor of shape (n, H, W)
    size : tuple of int
        The latent grid ``(h, w)``.

    Returns
    -------
    depth : float32 tensor of shape (n, 1, h, w)
    """
    depth = torch.as_tensor(np.asarray(depth, np.float32) if not torch.is_tensor(depth) else depth)
    if depth.ndim != 3:
        raise BrainLDMError(f"expected depth maps of shape (n, H, W), found {tuple(depth.shape)}")
    depth = resize(depth.float()[:, None], size)
    low = depth.amin(dim=(1, 2, 3), keepdim=True)
    high = depth.amax(dim=(1, 2, 3), keepdim=True)
    return 2.0 * (depth - low) / (high - low).clamp_min(1e-6) - 1.0


def shifted_scheduler(scheduler, shift):
    """The same scheduler with its noise schedule shifted for latents ``shift`` times smaller per side.

    A schedule made for one latent size destroys the layout of smaller latents sooner: averaged
    over a patch of ``shift`` × ``shift`` latent pixels, the noise falls by ``shift`` and the signal
    does not. Hoogeboom et al. (2023, "simple diffusion") therefore shift the log
    signal-to-noise ratio of every timestep by ``2 log shift``; e.g. ``shift=4`` gives 16 × 16 latents
    the layout-keeping schedule that SD's scaled-linear one gives its 64 × 64 latents.

    Parameters
    ----------
    scheduler : diffusers scheduler with ``alphas_cumprod`` (e.g. ``DDIMScheduler``)
        Its config supplies everything but the betas.
    shift : float
        At least 1; 1 returns an equal scheduler.

    Returns
    -------
    scheduler : a new scheduler of the same class
        Its ``trained_betas`` give ``alphas_cumprod`` with ``log(a / (1 - a))`` raised by ``2 log shift``
        at every timestep (and each beta in (0, 1)).
    """
    if not shift >= 1:
        raise ParameterError(f"the noise schedule's shift must be at least 1, found {shift}")
    alphas = scheduler.alphas_cumprod.double()
    shifted = torch.sigmoid(torch.logit(alphas) + 2 * math.log(shift))
    betas = 1 - shifted / torch.cat([shifted.new_ones(1), shifted[:-1]])
    return type(scheduler).from_config(scheduler.config, trained_betas=betas.tolist())


class LatentDiffusion:
    """Sample images with a latent diffusion model's VAE, conditional U-Net and scheduler.

    The one DDIM sampler of the package: reconstruction (:mod:`brainldm.generate.reconstruction`), the
    U-Net's features (:mod:`brainldm.features.unet`) and MindDiffuser's differentiable stage 2
    (:mod:`brainldm.generate.minddiffuser`) all run :meth:`sample`.

    Device and dtype: the modules stay where they were loaded (:func:`brainldm.models.loading.load_models`
    chooses, e.g. CUDA in float16). Latents, noise and conditioning are moved to that device once
    per call and stay there for the whole denoising loop; the scheduler's arithmetic runs in
    float32, and every module sees its inputs in its own dtype and hands back float32.
    Weights are frozen (``requires_grad_(False)``): gradients only ever flow into inputs.

    Parameters
    ----------
    vae : diffusers.AutoencoderKL
    unet : diffusers.UNet2DConditionModel
        Its ``in_channels`` is the VAE's ``latent_channels``, or one more for a U-Net
        that also takes a depth map (like SD 2 depth).
    scheduler : diffusers.DDIMScheduler (or another scheduler with the same interface)
        Its configuration is copied at every call, so calls do not share state.

    Attributes
    ----------
    vae_scale_factor : int
        Image pixels per latent pixel, from the VAE's number of blocks.
    latent_channels : int
    takes_depth : bool
    """

    def __init__(self, vae, unet, scheduler):
        self.vae, self.unet, self.scheduler = vae, unet, scheduler
        for module in (vae, unet):
            module.requires_grad_(False)
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self.latent_channels = vae.config.latent_channels
        extra = unet.config.in_channels - self.latent_channels
        if extra not in (0, 1):
            raise BrainLDMError(f"the U-Net takes {unet.config.in_channels} input channels and the VAE "
                             f"makes {self.latent_channels}; expected equal, or one more for depth")
        self.takes_depth = extra == 1

    @property
    def device(self):
        return self.unet.device

    @property
    def dtype(self):
        return self.unet.dtype

    @torch.no_grad()
    def encode(self, images, noise=None, batch_size=64):
        """Latents ``z`` of images, scaled by ``vae.config.scaling_factor``.

        Parameters
        ----------
        images : uint8 array of shape (n, H, W, 3)
        noise : tensor of shape (n or 1, latent_channels, H / f, W / f), optional
            Draw ``z`` from the posterior, ``mean + std * noise`` (what CompVis's
            ``get_first_stage_encoding`` does); by default ``z`` is the posterior mean.
        batch_size : int

        Returns
        -------
        z : float32 tensor of shape (n, latent_channels, H / f, W / f), f = ``vae_scale_factor``, on the CPU
        """
        pixels = images_to_tensor(images)
        out = []
        for i in range(0, len(pixels), batch_size):
            dist = self.vae.encode(pixels[i:i + batch_size].to(self.device, self.vae.dtype)).latent_dist
            z = dist.mean.float()
            if noise is not None:
                eps = noise if len(noise) == 1 else noise[i:i + batch_size]
                z = z + dist.std.float() * eps.to(z.device, torch.float32)
            out.append(z.cpu())
        return torch.cat(out) * self.vae.config.scaling_factor

    def decode_pixels(self, z, checkpoint=False):
        """Pixels in [-1, 1] (float32, on the device) of latents ``z``; differentiable when grad is on.

        ``checkpoint`` recomputes the decoder in the backward pass instead of keeping its
        activations (see :meth:`sample`).
        """
        z = z.to(self.device, torch.float32) / self.vae.config.scaling_factor

        def run(latents):
            return self.vae.decode(latents.to(self.vae.dtype)).sample.float().clamp(-1, 1)
        if checkpoint and torch.is_grad_enabled():
            return torch.utils.checkpoint.checkpoint(run, z, use_reentrant=False)
        return run(z)

    @torch.no_grad()
    def decode(self, z, batch_size=64):
        """Images of latents ``z`` (n, latent_channels, h, w): uint8 array (n, h f, w f, 3)."""
        self._check_latents(z)
        return tensor_to_images(torch.cat([self.decode_pixels(z[i:i + batch_size])
                                           for i in range(0, len(z), batch_size)]))

    def img2img(self, z, c, settings, generator=None, uncond=None, depth=None, callback=None):
        """Noise ``z`` to ``strength`` and denoise it with DDIM, conditioned on ``c``.

        Parameters
        ----------
        z : tensor of shape (n, latent_channels, h, w)
            Scaled latents (:meth:`encode`), e.g. decoded from fMRI.
        c : tensor of shape (n, tokens, cross_attention_dim)
            Text conditioning.
        settings : SamplerSettings
            Strength (1 starts from pure noise and ignores ``z``), guidance (above 1 it needs
            ``uncond``), steps and eta; ``n_samples``, ``batch_size`` and ``size`` are the callers'.
        generator : torch.Generator, optional
            Draws the starting noise.
        uncond : tensor of shape (1 or n, tokens, cross_attention_dim), optional
            Conditioning of the empty caption.
        depth : array of shape (n, H, W), optional
            Depth maps for a U-Net that takes depth (:func:`prepare_depth` resizes them);
            without them its depth channel is zero (the world U-Net learned this case
            with classifier-free dropout of depth).
        callback : callable, optional
            Called as ``callback(step, timestep, latents)`` after every step (``latents``
            on the model's device).

        Returns
        -------
        latents : float32 tensor of shape (n, latent_channels, h, w), on the CPU
            Decode them with :meth:`decode`.
        """
        self._check_latents(z)
        noise = torch.randn(z.shape, generator=generator, dtype=torch.float32)
        with torch.no_grad():
            return self.sample(z, c, noise, settings, uncond=uncond, depth=depth, callback=callback).cpu()

    def text2img(self, c, settings, generator=None, uncond=None, depth=None, callback=None, latent_size=None):
        """Generate from pure noise conditioned on ``c`` (see :meth:`img2img`; strength is taken as 1).

        Parameters
        ----------
        latent_size : tuple of int, optional
            ``(h, w)`` of the latents; default the U-Net's ``sample_size``.
        """
        size = latent_size or self.unet.config.sample_size
        size = (size, size) if isinstance(size, int) else tuple(size)
        noise = torch.randn((len(c), self.latent_channels, *size), generator=generator, dtype=torch.float32)
        with torch.no_grad():
            return self.sample(None, c, noise, settings.replace(strength=1.0), uncond=uncond, depth=depth,
                               callback=callback).cpu()

    def timesteps(self, strength, num_inference_steps):
        """A fresh scheduler and the DDIM timesteps an img2img run at ``strength`` takes (on the device)."""
        check_sampling(strength, num_inference_steps)
        scheduler = type(self.scheduler).from_config(self.scheduler.config)
        scheduler.set_timesteps(int(num_inference_steps), device=self.device)
        n_run = min(int(num_inference_steps * strength), int(num_inference_steps))
        timesteps = scheduler.timesteps[(int(num_inference_steps) - n_run) * scheduler.order:]
        if len(timesteps) == 0:
            raise BrainLDMError(f"strength {strength} with {num_inference_steps} steps runs no step; "
                             "raise one of them")
        return scheduler, timesteps

    def sample(self, z, c, noise, settings, uncond=None, depth=None, callback=None, checkpoint=False):
        """The DDIM sampler: noise ``z`` with ``noise`` to ``strength`` and denoise it under ``c``.

        Differentiable with respect to ``z`` and ``c`` when gradients are enabled (the
        public :meth:`img2img` and :meth:`text2img` run it without). Everything stays on
        the model's device from the first step to the last: no host copy inside the loop.

        Parameters
        ----------
        z : tensor of shape (n, latent_channels, h, w) or None
            Scaled start latents; None (or ``strength`` 1) starts from pure noise.
        c : tensor of shape (n, tokens, cross_attention_dim)
        noise : tensor of shape (n, latent_channels, h, w)
            The starting noise (drawn by the caller, so that it can be held fixed).
        settings : SamplerSettings
            Strength, guidance, steps, eta (its noise seeded with ``settings.seed``) and the noise
            level convention (``settings.noise_level``).
        uncond, depth, callback
            See :meth:`img2img`.
        checkpoint : bool
            Recompute each U-Net call in the backward pass instead of keeping its
            activations (:func:`torch.utils.checkpoint.checkpoint`): activation memory of a
            differentiable run is then one step's inputs per step plus one U-Net pass.

        Returns
        -------
        latents : float32 tensor of shape (n, latent_channels, h, w), on the model's device
        """
        device = self.device
        strength, guidance_scale, num_inference_steps = (settings.strength, settings.guidance_scale,
                                                         settings.num_inference_steps)
        scheduler, timesteps = self.timesteps(strength, num_inference_steps)
        noise = noise.to(device, torch.float32)
        n = len(noise)
        c = self._check_conditioning(c, n, "c").to(device)
        guided = guidance_scale > 1.0
        if guided:
            if uncond is None:
                raise BrainLDMError(f"guidance_scale {guidance_scale} > 1 needs the unconditional "
                                 "embedding `uncond` (the empty caption's c); pass it or use 1.0")
            uncond = self._check_conditioning(uncond, n, "uncond").to(device).expand(n, -1, -1)
            c = torch.cat([uncond, c])
        c = c.to(self.dtype)
        extra = self._depth_channel(depth, noise)
        if extra is not None:
            extra = extra.to(device, torch.float32)
            extra = torch.cat([extra] * 2) if guided else extra
        # noise the start latents to the first timestep kept (pure noise at strength 1); CompVis's
        # stochastic_encode noises one DDIM step above it (t = 801, then denoised from 781, at
        # strength 0.8 of 50 steps)
        start = timesteps[:1]
        if settings.noise_level == "compvis":
            start = start + scheduler.config.num_train_timesteps // int(num_inference_steps)
        if z is None or strength >= 1.0 or int(start) >= scheduler.config.num_train_timesteps:
            latents = noise * scheduler.init_noise_sigma
        else:
            latents = scheduler.add_noise(z.to(device, torch.float32), noise, start.repeat(n))
        step_kwargs = {}
        if "eta" in _step_parameters(scheduler):
            generator = torch.Generator(device).manual_seed(settings.seed) if settings.eta > 0 else None
            step_kwargs = {"eta": settings.eta, "generator": generator}
        for i, t in enumerate(timesteps):
            inputs = torch.cat([latents] * 2) if guided else latents
            inputs = scheduler.scale_model_input(inputs, t)
            if extra is not None:
                inputs = torch.cat([inputs, extra], dim=1)
            eps = self._eps(inputs.to(self.dtype), t, c, checkpoint)
            if guided:
                eps_uncond, eps_cond = eps.chunk(2)
                eps = eps_uncond + guidance_scale * (eps_cond - eps_uncond)
            latents = scheduler.step(eps, t, latents, **step_kwargs).prev_sample
            if callback is not None:
                callback(i, int(t), latents)
        return latents

    def _eps(self, inputs, t, c, checkpoint):
        """The U-Net's noise estimate in float32, optionally recomputed in the backward pass."""
        def run(x, cond):
            return self.unet(x, t, encoder_hidden_states=cond).sample.float()
        if checkpoint and torch.is_grad_enabled():
            return torch.utils.checkpoint.checkpoint(run, inputs, c, use_reentrant=False)
        return run(inputs, c)

    def _check_latents(self, z):
        if not torch.is_tensor(z) or z.ndim != 4 or z.shape[1] != self.latent_channels:
            found = tuple(z.shape) if hasattr(z, "shape") else type(z).__name__
            raise BrainLDMError(f"expected latents z of shape (n, {self.latent_channels}, h, w) as a "
                             f"tensor, found {found}; make them with LatentDiffusion.encode")

    def _check_conditioning(self, c, n, name):
        """``c`` as a float32 tensor of shape (n, tokens, dim) (``uncond`` may have one row)."""
        dim = self.unet.config.cross_attention_dim
        c = c.float() if torch.is_tensor(c) else torch.as_tensor(c, dtype=torch.float32)
        rows_ok = c.ndim == 3 and (len(c) == n if name == "c" else len(c) in (1, n))
        if not rows_ok or c.shape[-1] != dim:
            rows = n if name == "c" else f"1 or {n}"
            raise BrainLDMError(f"expected {name} of shape ({rows}, tokens, {dim}), found "
                             f"{tuple(c.shape)}; encode captions with the text encoder that "
                             "matches this U-Net")
        return c

    def _depth_channel(self, depth, z):
        h, w = z.shape[-2:]
        if depth is None:
            return torch.zeros(len(z), 1, h, w, device=z.device) if self.takes_depth else None
        if not self.takes_depth:
            raise BrainLDMError("depth maps were given but this U-Net has no depth input channel; "
                             "use a depth-conditioned U-Net or drop `depth`")
        if len(depth) != len(z):
            raise BrainLDMError(f"expected {len(z)} depth maps (one per latent), found {len(depth)}")
        return prepare_depth(depth, (h, w))


def _step_parameters(scheduler):
    return inspect.signature(scheduler.step).parameters
