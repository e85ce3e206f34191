"""Features from inside the latent diffusion model, for encoding models (Takagi & Nishimoto 2023, sec. 3.3).

For every stimulus, one img2img run (the seen image's ``z`` noised to ``strength``
and denoised under its captions' ``c``, as in the ``X_zc`` reconstruction) gives:

* ``z_c`` — the latent at the end of the run;
* the **trajectory** — the latent after every denoising step (``n_steps`` of them,
  ``int(num_inference_steps * strength)``);
* **U-Net activations** — the output of every down block, the mid block and every up
  block (``down1`` … ``mid`` … ``upK``; SD 1.4 and the world U-Net have 4 and 3 down
  blocks), recorded by forward hooks at chosen steps (by default the first, middle and
  last step: the *early*, *middle* and *late* stages of denoising). With classifier-free
  guidance the U-Net sees a batch of unconditional and conditional inputs; the
  conditional half is kept.

**How activations are reduced.** A block's output ``(channels, H, W)`` is average-pooled
over space to a ``pool`` × ``pool`` grid (``torch.nn.functional.adaptive_avg_pool2d``; a
map already smaller than the grid is kept as it is) and flattened. With ``pool=4`` the
world U-Net's blocks give 512 to 1,024 features per image, and SD 1.4's (320 to 1,280
channels) 5,120 to 20,480 — few enough for a kernel ridge fit whose cost grows with the
number of images, not of features. The coarse grid keeps some retinotopy (which quadrant
of the image a channel responds in) and drops fine position.

Everything is computed once per dataset, stimulus set, model and setting and cached
(:func:`brainldm.data.cache.cached_arrays`). The noise of the batch of images starting at
position ``i`` is drawn from a generator seeded with ``(seed, i)``, so a run is
reproducible for the same ids and ``batch_size``.
"""

from dataclasses import dataclass, field

import numpy as np
import torch

from brainldm.data.cache import array_digest, cached_arrays
from brainldm.errors import BrainLDMError, check_choice
from brainldm.features.stimulus import feature_shape, stimulus_features
from brainldm.models.ldm import sampler_settings
from brainldm.data.progress import progress_bar

__all__ = ["STAGES", "unet_layers", "layer_depths", "stage_steps",
           "denoising_features", "LDMFeatures", "ldm_features"]

_VERSION = "1"

#: the three stages of denoising the U-Net analyses compare
STAGES = ("early", "middle", "late")


def unet_layers(unet):
    """Names of the U-Net blocks whose outputs can be recorded, input to output.

    Parameters
    ----------
    unet : diffusers.UNet2DConditionModel

    Returns
    -------
    names : tuple of str
        ``("down1", ..., "downK", "mid", "up1", ..., "upK")`` with K from the config.
    """
    n_down = len(unet.config.down_block_types)
    n_up = len(unet.config.up_block_types)
    return tuple([f"down{i + 1}" for i in range(n_down)] + ["mid"] + [f"up{i + 1}" for i in range(n_up)])


def layer_depths(layers):
    """How deep in the U-Net each block sits: 0 for the outermost (``down1``, the last up block).

    Parameters
    ----------
    layers : sequence of str
        Names from :func:`unet_layers`.

    Returns
    -------
    depths : dict of str to int
        ``downI`` is ``I - 1``, ``mid`` is the number of down blocks (the bottleneck), and
        ``upJ`` is ``n_up - J`` (up blocks mirror the down blocks).
    """
    n_down = sum(name.startswith("down") for name in layers)
    n_up = sum(name.startswith("up") for name in layers)
    depths = {}
    for name in layers:
        if name == "mid":
            depths[name] = n_down
        elif name.startswith("down"):
            depths[name] = int(name[4:]) - 1
        elif name.startswith("up"):
            depths[name] = n_up - int(name[2:])
        else:
            raise BrainLDMError(f"unknown U-Net layer {name!r}; expected downI, mid or upJ (see unet_layers)")
    return depths


def _layer_modules(unet):
    modules = {f"down{i + 1}": block for i, block in enumerate(unet.down_blocks)}
    modules["mid"] = unet.mid_block
    modules.update({f"up{i + 1}": block for i, block in enumerate(unet.up_blocks)})
    return modules


def _n_steps(settings):
    """DDIM steps an img2img run of ``settings`` takes (at least one: :class:`SamplerSettings` checks it)."""
    return min(int(settings.num_inference_steps * settings.strength), int(settings.num_inference_steps))


def stage_steps(n_steps):
    """The step index of each denoising stage: the first, the middle and the last step.

    Parameters
    ----------
    n_steps : int
        Steps the img2img run takes (``int(num_inference_steps * strength)``).

    Returns
    -------
    steps : dict of str to int
        ``{"early": 0, "middle": (n_steps - 1) // 2, "late": n_steps - 1}``.
    """
    if int(n_steps) < 1:
        raise BrainLDMError(f"a denoising run needs at least one step; found {n_steps}")
    return {"early": 0, "middle": (int(n_steps) - 1) // 2, "late": int(n_steps) - 1}


def _resolve_layers(unet, layers):
    names = unet_layers(unet)
    if layers is None:
        return ()
    if isinstance(layers, str):
        layers = names if layers == "all" else (layers,)
    for name in layers:
        check_choice("U-Net layer", name, names)
    return tuple(dict.fromkeys(layers))


def _resolve_steps(steps, n_steps):
    if steps is None or steps == "stages":
        return tuple(sorted(set(stage_steps(n_steps).values())))
    if steps == "all":
        return tuple(range(n_steps))
    steps = tuple(sorted(set(int(s) for s in steps)))
    bad = [s for s in steps if not 0 <= s < n_steps]
    if bad:
        raise BrainLDMError(f"steps {bad} are outside this run's {n_steps} denoising steps (0 to {n_steps - 1}); "
                            "use 'stages', 'all' or indices in that range")
    return steps


@torch.no_grad()
def denoising_features(ldm, z, c, uncond, settings, layers=None, steps="stages", pool=4):
    """Run img2img on latents ``z`` under ``c`` and record the latents and U-Net activations.

    Parameters
    ----------
    ldm : brainldm.models.ldm.LatentDiffusion
    z : float tensor of shape (n, latent_channels, h, w)
        Latents of the seen images (:meth:`LatentDiffusion.encode`).
    c : float tensor of shape (n, tokens, dim)
        Their text conditioning.
    uncond : float tensor of shape (1, tokens, dim) or None
        The empty caption's ``c``; needed when ``settings.guidance_scale > 1``.
    settings : brainldm.models.ldm.SamplerSettings
        img2img settings (see :meth:`LatentDiffusion.img2img`); the batch starting at image ``i``
        draws its noise from ``settings.seed * 1_000_003 + i``; ``settings.batch_size`` images run
        together.
    layers : None, "all", str or sequence of str
        U-Net blocks to record (:func:`unet_layers`); None records none.
    steps : "stages", "all" or sequence of int
        Steps at which activations are recorded; ``"stages"`` is :func:`stage_steps`.
    pool : int
        Activations are average-pooled to at most ``pool`` × ``pool`` positions.

    Returns
    -------
    out : dict of str to float32 array
        ``z_c`` (n, latent_channels, h, w); ``trajectory`` (n, n_steps, latent_channels, h, w),
        the latent after each step; ``timesteps`` (n_steps,) the scheduler's timestep of each
        step; ``unet/<layer>/<step>`` (n, channels, p, p) for each recorded layer and step.
    """
    z = torch.as_tensor(z, dtype=torch.float32)
    c = torch.as_tensor(c, dtype=torch.float32)
    if z.ndim != 4 or c.ndim != 3 or len(z) != len(c):
        raise BrainLDMError(f"expected z of shape (n, channels, h, w) and c of shape (n, tokens, dim) for the "
                            f"same n; found {tuple(z.shape)} and {tuple(c.shape)}")
    if int(pool) < 1:
        raise BrainLDMError(f"pool must be a positive integer; found {pool!r}")
    n_steps = _n_steps(settings)
    layers = _resolve_layers(ldm.unet, layers)
    steps = _resolve_steps(steps, n_steps)
    modules = _layer_modules(ldm.unet)
    guided = settings.guidance_scale > 1.0
    batch_size = settings.batch_size

    state = {"step": -1, "timesteps": []}
    acts = {}

    def count_step(module, args, kwargs):
        state["step"] += 1
        t = args[1] if len(args) > 1 else kwargs["timestep"]
        state["timesteps"].append(int(t))

    def recorder(layer):
        def hook(module, args, output):
            if state["step"] not in steps:
                return
            hidden = output[0] if isinstance(output, tuple) else output
            if guided:  # [unconditional; conditional]
                hidden = hidden[len(hidden) // 2:]
            size = (min(int(pool), hidden.shape[-2]), min(int(pool), hidden.shape[-1]))
            pooled = torch.nn.functional.adaptive_avg_pool2d(hidden.float(), size)
            acts.setdefault(f"unet/{layer}/{state['step']}", []).append(pooled)  # host copy after the batch
        return hook

    handles = [ldm.unet.register_forward_pre_hook(count_step, with_kwargs=True)]
    handles += [modules[name].register_forward_hook(recorder(name)) for name in layers]
    finals, trajectories = [], []
    try:
        for start in progress_bar(range(0, len(z), batch_size), desc="LDM features", unit="batch"):
            part = slice(start, start + batch_size)
            state["step"], state["timesteps"] = -1, []
            path = []
            generator = torch.Generator().manual_seed(int(settings.seed) * 1_000_003 + start)
            latents = ldm.img2img(z[part], c[part], settings, generator=generator, uncond=uncond,
                                  callback=lambda i, t, lat: path.append(lat.float().clone()))
            finals.append(latents.float())
            trajectories.append(torch.stack(path, dim=1).cpu())
    finally:
        for handle in handles:
            handle.remove()
    out = {"z_c": torch.cat(finals).numpy(), "trajectory": torch.cat(trajectories).numpy(),
           "timesteps": np.asarray(state["timesteps"], dtype=np.int64)}
    for key, parts in acts.items():
        out[key] = torch.cat(parts).cpu().numpy()
    return out


@dataclass
class LDMFeatures:
    """The img2img features of a set of images (see the module's notes).

    Attributes
    ----------
    ids : int array of shape (n,)
        The images, one row each, in the order asked for.
    settings : dict
        The :class:`~brainldm.models.ldm.SamplerSettings` of the run as a dict, and ``pool``.
    z_c : float32 array of shape (n, d)
        The flattened latent at the end of the run.
    trajectory : float32 array of shape (n, n_steps, d)
        The flattened latent after every step.
    timesteps : int array of shape (n_steps,)
    activations : dict of (layer, step) to float32 array (n, d_layer)
        Pooled, flattened U-Net block outputs.
    layer_shapes : dict of (layer, step) to tuple
        The pooled shape ``(channels, p, p)`` of each activation.
    """

    ids: np.ndarray
    settings: dict
    z_c: np.ndarray
    trajectory: np.ndarray
    timesteps: np.ndarray
    activations: dict = field(default_factory=dict)
    layer_shapes: dict = field(default_factory=dict)

    @property
    def n_steps(self):
        return self.trajectory.shape[1]

    @property
    def stages(self):
        """:func:`stage_steps` of this run."""
        return stage_steps(self.n_steps)

    @property
    def layers(self):
        """The recorded U-Net layers, input to output."""
        return tuple(dict.fromkeys(layer for layer, _ in self.activations))

    def describe(self):
        """One line: the run's steps, their timesteps and its stages."""
        return (f"{self.n_steps} denoising steps at timesteps {self.timesteps.tolist()}; stages (step index) "
                f"{self.stages}; strength {self.settings['strength']}, guidance {self.settings['guidance_scale']}")

    def step(self, i):
        """The flattened latent after step ``i`` (n, d)."""
        if not -self.n_steps <= int(i) < self.n_steps:
            raise BrainLDMError(f"step {i} is outside this run's {self.n_steps} steps")
        return self.trajectory[:, int(i)]

    def activation(self, layer, step):
        """Pooled activations of ``layer`` at ``step`` (an index, or ``"early"``/``"middle"``/``"late"``)."""
        if isinstance(step, str):
            check_choice("stage", step, STAGES)
            step = self.stages[step]
        key = (layer, int(step))
        if key not in self.activations:
            recorded = sorted(self.activations)
            raise BrainLDMError(f"no activations of {layer!r} at step {step} were recorded; recorded: {recorded}. "
                                "Pass layers=... and steps=... to ldm_features.")
        return self.activations[key]


def ldm_features(ds, models, ids, settings=None, layers=None, steps="stages", pool=4):
    """img2img features of the images ``ids`` of ``ds`` (cached).

    ``z`` and ``c`` are the stimuli's own (:func:`brainldm.features.stimulus.stimulus_features`), not
    decoded from the brain: these are features to *encode* fMRI from.

    Parameters
    ----------
    ds : Dataset
    models : ModelSet
    ids : int array of shape (n,)
    settings : brainldm.models.ldm.SamplerSettings, optional
        Default: ``sampler_settings(ds.name, "encoding")``
        (:data:`brainldm.models.ldm.SAMPLER_DEFAULTS`).
    layers : None, "all", str or sequence of str
        U-Net blocks to record (:func:`unet_layers`).
    steps : "stages", "all" or sequence of int
        Steps at which to record them.
    pool : int
        Spatial grid of the pooled activations.

    Returns
    -------
    features : LDMFeatures
    """
    settings = settings or sampler_settings(ds.name, "encoding")
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    uniq, inverse = np.unique(ids, return_inverse=True)
    n_steps = _n_steps(settings)
    layers = _resolve_layers(models.ldm.unet, layers)
    steps = _resolve_steps(steps, n_steps) if layers else ()

    def compute():
        z = stimulus_features(ds, models, "z", uniq).reshape((-1,) + tuple(feature_shape(models, "z")))
        c = stimulus_features(ds, models, "c", uniq).reshape((-1,) + tuple(feature_shape(models, "c")))
        return denoising_features(models.ldm, torch.from_numpy(z), torch.from_numpy(c), models.uncond, settings,
                                  layers=layers, steps=steps, pool=pool)

    sampling = {k: settings.as_dict()[k] for k in ("strength", "guidance_scale", "num_inference_steps", "seed",
                                                   "batch_size", "eta", "noise_level")}
    params = {"dataset": ds.name, "stimuli": ds.cache_token, "model": models.cache_token,
              "ids": array_digest(uniq), **sampling, "layers": list(layers), "steps": list(steps), "pool": pool}
    arrays = cached_arrays("ldm_features", params, _VERSION, compute)
    activations, shapes = {}, {}
    for key, value in arrays.items():
        if key.startswith("unet/"):
            _, layer, step = key.split("/")
            activations[(layer, int(step))] = value.reshape(len(value), -1)[inverse]
            shapes[(layer, int(step))] = tuple(value.shape[1:])
    n = len(uniq)
    return LDMFeatures(ids=ids, settings={**settings.as_dict(), "pool": pool},
                       z_c=arrays["z_c"].reshape(n, -1)[inverse],
                       trajectory=arrays["trajectory"].reshape(n, n_steps, -1)[inverse],
                       timesteps=arrays["timesteps"], activations=activations, layer_shapes=shapes)
