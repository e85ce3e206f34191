"""Reconstruction from decoded latents, as Takagi & Nishimoto (CVPR 2023) do it.

1. ``X_z``: the decoded image latent ``z`` through the VAE decoder.
2. ``X_zc``: ``X_z`` re-encoded, noised to ``strength`` and denoised by the U-Net
   conditioned on the decoded text embedding ``c`` (img2img).
3. ``X_c``: generated from pure noise conditioned on ``c`` alone.

Each image gets ``n_samples`` samples; the noise of sample ``k`` of image ``i``
comes from a ``torch.Generator`` seeded with ``(seed, k, i)`` (:func:`sample_noise`),
so every result is reproducible, sample ``k`` of one run equals sample ``k`` of a run
with more samples, and the batch size (samples of several images run as one batch on
the model's device) changes nothing but speed.
"""

import dataclasses

import numpy as np
import torch

from brainldm.data.cache import array_digest, cached_arrays
from brainldm.errors import BrainLDMError
from brainldm.features.stimulus import resize_images
from brainldm.models.ldm import SamplerSettings, sampler_settings
from brainldm.models.loading import ModelSet
from brainldm.fit.decoding import decode
from brainldm.fit.protocol import Protocol, protocol_for
from brainldm.data.progress import progress_bar

__all__ = ["Reconstruction", "reconstruct", "brain_reconstructions", "SubjectReconstructions",
           "sample_noise"]
_VERSION = "3"  # 2: noise per (image, sample), samples batched; 3: protocols

class Reconstruction(dict):
    """Reconstructed images: ``X_z`` (n, H, W, 3), ``X_c`` and ``X_zc`` (n, samples, H, W, 3), uint8."""

    def panels(self, n=None):
        """The rows of a figure of the first ``n`` images (all by default), by label.

        ``X_z``, the first sample of ``X_c`` and every sample of ``X_zc`` (``"X_zc #1"``, ...),
        each uint8 (n, H, W, 3); a reconstruction that was not made is left out.
        """
        keep = slice(None) if n is None else slice(int(n))
        rows = {}
        if "X_z" in self:
            rows["X_z"] = self["X_z"][keep]
        if "X_c" in self:
            rows["X_c"] = self["X_c"][keep, 0]
        for k in range(self["X_zc"].shape[1] if "X_zc" in self else 0):
            rows[f"X_zc #{k + 1}"] = self["X_zc"][keep, k]
        return rows


def _check_shapes(ldm, z, c, uncond):
    h, w = z.shape[-2:] if z is not None and z.ndim == 4 else (None, None)
    if z is not None and (z.ndim != 4 or z.shape[1] != ldm.latent_channels):
        raise BrainLDMError(f"decoded z has shape {tuple(z.shape)}; this model's latents are "
                            f"(n, {ldm.latent_channels}, h, w): reshape the decoded vectors with "
                            "features.latent_shape")
    dim = ldm.unet.config.cross_attention_dim
    if c.ndim != 3 or c.shape[-1] != dim:
        raise BrainLDMError(f"decoded c has shape {tuple(c.shape)}; this U-Net takes (n, tokens, {dim})")
    if uncond is not None and uncond.shape[1:] != c.shape[1:]:
        raise BrainLDMError(f"the unconditional embedding has shape {tuple(uncond.shape)} but c has "
                            f"{tuple(c.shape)}: they must come from the same text encoder")
    if z is not None and len(z) != len(c):
        raise BrainLDMError(f"got {len(z)} latents z but {len(c)} embeddings c; decode both for the same images")
    return h, w


def reconstruct(ldm, z, c, uncond, settings, depth=None, which=("X_z", "X_c", "X_zc"), protocol=None):
    """Reconstruct images from decoded ``z`` and ``c``.

    Parameters
    ----------
    ldm : brainldm.models.ldm.LatentDiffusion
    z : float tensor of shape (n, latent_channels, h, w) or None
        Decoded image latents (scaled as :meth:`LatentDiffusion.encode` scales them).
    c : float tensor of shape (n, tokens, dim)
        Decoded text conditioning.
    uncond : float tensor of shape (1, tokens, dim)
        The empty caption's embedding, for classifier-free guidance.
    settings : brainldm.models.ldm.SamplerSettings
        Strength, guidance, steps (Takagi: 0.8, 5.0, 50 DDIM steps), samples per image (Takagi:
        5), the seed of the noise (see the module's notes), the batch of (image, sample) rows
        denoised together, and ``size``: pixels of ``X_zc`` and ``X_c``. ``X_z`` is resized to
        ``size`` × ``size`` and re-encoded before img2img; Takagi & Nishimoto decode ``z`` at 320 px
        and run img2img at 512 (``codes/diffusion_sd1/diffusion_decoding.py``, lines 158–179).
        Default size: ``X_z``'s (or the U-Net's ``sample_size`` without ``z``).
    depth : float array of shape (n, H, W), optional
        Depth maps for a depth-conditioned U-Net (``+D``).
    which : tuple of str
        Which of ``X_z``, ``X_c``, ``X_zc`` to make (``X_z`` is needed for ``X_zc``).
    protocol : brainldm.fit.protocol.Protocol, optional
        Its ``shared_noise``, ``init_latent`` and ``noise_level`` (default :meth:`Protocol.brainldm`); the
        protocol's noise level replaces ``settings.noise_level``.

    Returns
    -------
    result : Reconstruction
    """
    z = None if z is None else torch.as_tensor(z, dtype=torch.float32)
    c = torch.as_tensor(c, dtype=torch.float32)
    uncond = None if uncond is None else torch.as_tensor(uncond, dtype=torch.float32)
    h, w = _check_shapes(ldm, z, c, uncond)
    unknown = set(which) - {"X_z", "X_c", "X_zc"}
    if unknown or (z is None and {"X_z", "X_zc"} & set(which)):
        raise BrainLDMError(f"which must name X_z, X_c or X_zc (X_z and X_zc need z); got {which}")
    n = len(c)
    out = Reconstruction()
    if z is not None:
        out["X_z"] = ldm.decode(z)
    if settings.size is None:
        pixels = h * ldm.vae_scale_factor if h is not None else ldm.unet.config.sample_size * ldm.vae_scale_factor
    else:
        pixels = int(settings.size)
    size = (pixels // ldm.vae_scale_factor,) * 2
    protocol = protocol or Protocol.brainldm()
    settings = settings.replace(noise_level=protocol.noise_level)
    shared, seed, n_samples, batch_size = protocol.shared_noise, settings.seed, settings.n_samples, settings.batch_size
    # X_zc starts from X_z resized and re-encoded, once per image (Takagi's resize-and-re-encode step)
    z_init = None
    if "X_zc" in which:
        posterior = None
        if protocol.init_latent == "sample":
            posterior = torch.stack([sample_noise(ldm, size, seed, 0 if shared else i, -1) for i in range(n)])
        z_init = ldm.encode(resize_images(out["X_z"], pixels), noise=posterior)
    # rows (image i, sample k) in image-major order, run together in batches of `batch_size` rows
    rows = [(i, k) for i in range(n) for k in range(n_samples)]
    bar = progress_bar(total=len(rows) * (("X_zc" in which) + ("X_c" in which)), desc="reconstruct", unit="sample")
    for name in ("X_zc", "X_c"):
        if name not in which:
            continue
        images = []
        for first in range(0, len(rows), batch_size):
            part = rows[first:first + batch_size]
            index = torch.tensor([i for i, _ in part])
            noise = torch.stack([sample_noise(ldm, size, seed, 0 if shared else i, k) for i, k in part])
            latents = ldm.sample(None if name == "X_c" else z_init[index], c[index], noise,
                                 settings if name == "X_zc" else settings.replace(strength=1.0), uncond=uncond,
                                 depth=None if depth is None else np.asarray(depth)[index.numpy()])
            images.append(ldm.decode(latents))
            bar.update(len(part))
        out[name] = np.concatenate(images).reshape(n, n_samples, *images[0].shape[1:])
    bar.close()
    if "X_z" not in which:
        out.pop("X_z", None)
    return out


def sample_noise(ldm, size, seed, image, sample):
    """The starting noise of sample ``sample`` of image ``image``: float32 (latent_channels, h, w), on the CPU.

    Drawn from its own generator, seeded with ``(seed, image, sample)``, so that it does not
    depend on the batch it runs in nor on how many samples or images a run makes. With the
    authors' shared noise every image is drawn as image 0. Sample ``-1`` is the noise of the
    posterior sample of ``X_z``'s latent.
    """
    generator = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(sample) * 10_007 + int(image))
    return torch.randn((ldm.latent_channels, *size), generator=generator, dtype=torch.float32)


def brain_reconstructions(ds, models, settings=None, n_images=None, z_roi=None, c_roi=None, protocol=None,
                          which=("X_z", "X_c", "X_zc")):
    """Decode ``z`` and ``c`` from a subject's test responses and reconstruct (cached).

    Parameters
    ----------
    ds : Dataset
    models : ModelSet
    settings : brainldm.models.ldm.SamplerSettings, optional
        The dataset's :func:`~brainldm.models.ldm.sampler_settings` by default; without a ``size``,
        the images are generated at the models' ``generation_resolution``.
    n_images : int, optional
        How many test images, from the first (all by default).
    z_roi, c_roi : str or list of str, optional
        Where ``z`` and ``c`` are decoded from (default ``early`` and ``ventral``).
    protocol : brainldm.fit.protocol.Protocol or str, optional
        Default: the authors' on NSD, ours on the world (:func:`brainldm.fit.protocol.protocol_for`).
    which : tuple of str
        See :func:`reconstruct`.

    Returns
    -------
    ids : int array of shape (n,)
        The test images.
    result : Reconstruction
        ``X_z``, ``X_c``, ``X_zc``.
    decoded : dict
        The :class:`brainldm.fit.decoding.Decoded` of ``z`` and ``c``.
    """
    settings = settings or sampler_settings(ds.name)
    if settings.size is None:
        settings = settings.replace(size=models.generation_resolution)
    protocol = protocol_for(protocol, ds.name)
    decoded = {"z": decode(ds, models, "z", z_roi, protocol), "c": decode(ds, models, "c", c_roi, protocol)}
    keep = slice(None) if n_images is None else slice(int(n_images))
    z = torch.from_numpy(decoded["z"].unflatten(models)[keep])
    c = torch.from_numpy(decoded["c"].unflatten(models)[keep])
    sampling = {k: v for k, v in settings.as_dict().items() if k not in ("batch_size", "noise_level")}
    params = {"model": models.cache_token, "inputs": array_digest(z.numpy(), c.numpy()), **sampling,
              "protocol": dataclasses.asdict(protocol), "which": sorted(which)}
    arrays = cached_arrays("reconstructions", params, _VERSION, lambda: dict(reconstruct(
        models.ldm, z, c, models.uncond, settings, protocol=protocol, which=which)))
    return decoded["z"].ids[keep], Reconstruction(arrays), decoded


@dataclasses.dataclass(frozen=True)
class SubjectReconstructions:
    """The same test images reconstructed from each subject's brain, one subject at a time.

    Iterating yields ``(subject, seen images, Reconstruction)`` for each dataset in turn, from
    :func:`brain_reconstructions` (cached), so that only one subject's images are held at once
    (on NSD one subject's ``X_c`` and ``X_zc`` are about 8 GB);
    :func:`brainldm.evaluate.metrics.evaluate_subjects` scores them.

    Parameters
    ----------
    datasets : sequence of Dataset
        One per subject, of the same dataset (their test images are shared).
    models : ModelSet
    settings : brainldm.models.ldm.SamplerSettings, optional
    n_images : int, optional
    protocol : brainldm.fit.protocol.Protocol or str, optional
        See :func:`brain_reconstructions`.
    """

    datasets: tuple
    models: ModelSet
    settings: SamplerSettings = None
    n_images: int = None
    protocol: Protocol = None

    def __post_init__(self):
        object.__setattr__(self, "datasets", tuple(self.datasets))
        if not self.datasets:
            raise BrainLDMError("SubjectReconstructions needs at least one subject's dataset")
        names = {ds.name for ds in self.datasets}
        if len(names) > 1:
            raise BrainLDMError(f"the subjects must come from one dataset, found {sorted(names)}")

    @property
    def subjects(self):
        """The subjects' names."""
        return [ds.subject for ds in self.datasets]

    def reconstruct(self, ds):
        """``(ids, Reconstruction)`` of one subject's dataset, with this object's settings."""
        ids, recon, _ = brain_reconstructions(ds, self.models, self.settings, n_images=self.n_images,
                                              protocol=self.protocol)
        return ids, recon

    def __iter__(self):
        for ds in self.datasets:
            ids, recon = self.reconstruct(ds)
            yield ds.subject, ds.images(ids), recon

    def panels(self, n=6, key="X_zc", sample=0):
        """The rows of a figure: the first ``n`` seen test images, then each subject's reconstructions of them.

        Returns
        -------
        rows : dict of str to uint8 array of shape (n, H, W, 3)
            ``"seen"`` (the first subject's test images), then ``"<subject> <key>"``: sample
            ``sample`` of ``key`` (``X_z`` has no samples).
        """
        rows, shown = {}, None
        for ds in self.datasets:
            ids, recon = self.reconstruct(ds)
            if shown is None:
                shown = np.asarray(ids[:n])
                rows["seen"] = ds.images(shown)
            position = {int(i): k for k, i in enumerate(ids)}
            missing = [int(i) for i in shown if int(i) not in position]
            if missing:
                raise BrainLDMError(f"{ds.subject} has no reconstruction of test images {missing} that "
                                    f"{self.datasets[0].subject} has; show subjects that saw the same test images")
            images = recon[key][[position[int(i)] for i in shown]]
            rows[f"{ds.subject} {key}"] = images if images.ndim == 4 else images[:, sample]
        return rows

