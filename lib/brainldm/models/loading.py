"""One set of models per dataset, behind one interface.

:func:`load_models` returns a :class:`ModelSet` with the latent diffusion model,
the text encoder that makes ``c``, and the feature networks the evaluation uses.
On the world these are the small models shipped with the package
(:mod:`brainldm.models.world`); on NSD they are Stable Diffusion v1.4, its CLIP text
encoder, CLIP ViT-L/14, AlexNet and Inception-v3 from :mod:`brainldm.models.zoo`. The
decoding, reconstruction and evaluation code never asks which.
"""

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np
import torch
from diffusers import DDIMScheduler

from brainldm.errors import check_choice
from brainldm.models import zoo
from brainldm.models.world import load_world_models
from brainldm.models.ldm import LatentDiffusion, images_to_tensor, resize, to_module
from brainldm.data.progress import quiet_libraries
from brainldm.settings import torch_device, torch_dtype

__all__ = ["ModelSet", "FeatureNet", "load_models", "world_model_set", "weights_digest", "ClipTextEncoder",
           "MODEL_SETS", "LazyExtras", "NSD_EXTRAS", "describe_placement"]

#: dataset name -> model set used with it
MODEL_SETS = {"world": "world", "nsd": "stable-diffusion-v1-4"}


def weights_digest(*modules):
    """A short digest of torch modules' parameters (names and the first 16,384 values of each).

    A scheduler (no parameters) is digested by its configuration, which holds its betas: the world's
    are trained ones (:func:`brainldm.models.ldm.shifted_scheduler`).
    """
    digest = hashlib.sha256()
    for module in modules:
        if not isinstance(module, torch.nn.Module):
            digest.update(json.dumps(dict(module.config), sort_keys=True, default=str).encode())
            continue
        for name, tensor in sorted(module.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().flatten()[:16384].float().cpu().numpy().tobytes())
    return digest.hexdigest()[:12]


class FeatureNet:
    """A feature network's named layers as flat vectors.

    Parameters
    ----------
    name : str
    forward : callable
        Maps a float32 tensor (n, 3, H, W) in [-1, 1] at ``input_size``, on ``device``, to a
        dict of layer name -> tensor (n, ...); it casts to its module's dtype itself.
    layers : tuple of str
    input_size : int
        Images are resized to ``input_size`` × ``input_size`` first.
    batch_size : int
    device : torch.device
        Where the network's weights are.

    Attributes
    ----------
    forward : callable
        The given ``forward`` with its input moved to ``device`` (float32) and its layers
        returned in float32: differentiable, the module boundary every caller goes through.
    """

    def __init__(self, name, forward, layers, input_size, batch_size=64, device="cpu"):
        self.name, self.layers = name, tuple(layers)
        self.input_size, self.batch_size = int(input_size), int(batch_size)
        self.device = torch.device(device)

        def boundary(pixels):
            acts = forward(pixels.to(self.device, torch.float32))
            return {layer: act.float() for layer, act in acts.items()}
        self.forward = boundary

    @torch.no_grad()
    def __call__(self, images, layers=None):
        """Features of uint8 images (n, H, W, 3): dict of layer -> float32 array (n, d)."""
        layers = self.layers if layers is None else tuple(dict.fromkeys(layers))
        out = {layer: [] for layer in layers}
        for start in range(0, len(images), self.batch_size):
            pixels = images_to_tensor(np.asarray(images[start:start + self.batch_size])).to(self.device)
            pixels = resize(pixels, self.input_size)
            acts = self.forward(pixels)
            for layer in layers:
                out[layer].append(acts[layer].flatten(1).cpu().numpy())
        return {layer: np.concatenate(parts) for layer, parts in out.items()}

    def __repr__(self):
        return f"<FeatureNet {self.name} layers={self.layers} input={self.input_size}px>"


@dataclass
class ModelSet:
    """The models one dataset is analysed with.

    Attributes
    ----------
    name : str
        ``"world"`` or ``"stable-diffusion-v1-4"``.
    ldm : LatentDiffusion
    text_encoder : object
        ``encode_captions(list of caption lists) -> c`` of shape (n, tokens, dim).
    uncond : tensor of shape (1, tokens, dim)
        ``c`` of the empty caption.
    resolution : int
        Stimuli are resized to this many pixels before encoding ``z``.
    feature_nets : dict of str to FeatureNet
        ``clip`` (early, middle, late, embedding), ``cnn`` (early, middle, late) and
        ``inception`` (late), used by :mod:`brainldm.evaluate.metrics`.
    cache_token : str
        Identifies the weights (a digest of the VAE's and U-Net's parameters and the
        resolution), so that cached features and images follow a retrained model.
    extras : dict
        Dataset-specific companions. World: ``captioner``, ``image_encoder``,
        ``depth_estimator``, ``cnn`` (loaded). NSD: a :class:`LazyExtras` that loads
        ``captioner`` (BLIP), ``depth_estimator`` (DPT-large) and ``depth_ldm`` (a
        :class:`ModelSet` of SD 2 depth) the first time a chapter asks for them.
    """

    name: str
    ldm: LatentDiffusion
    text_encoder: object
    uncond: torch.Tensor
    resolution: int
    feature_nets: dict
    cache_token: str = ""
    extras: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.cache_token:
            self.cache_token = (f"{self.name}-{weights_digest(self.ldm.vae, self.ldm.unet, self.ldm.scheduler)}-"
                                f"{self.resolution}")

    @property
    def generation_resolution(self):
        """Pixels the U-Net generates at (its ``sample_size`` × the VAE's factor): 512 for SD v1.4.

        ``X_z`` (decoded at :attr:`resolution`) is resized to it before img2img, as Takagi &
        Nishimoto resize 320 px to 512.
        """
        return self.ldm.unet.config.sample_size * self.ldm.vae_scale_factor

    def latent_shape(self):
        """Shape ``(channels, h, w)`` of ``z`` at :attr:`resolution`, from the VAE's config."""
        side = self.resolution // self.ldm.vae_scale_factor
        return (self.ldm.latent_channels, side, side)

    def c_shape(self):
        """Shape ``(tokens, dim)`` of ``c``."""
        return tuple(self.uncond.shape[1:])


class LazyExtras(dict):
    """A dict whose missing entries are loaded on first access, by name.

    ``extras["captioner"]`` loads BLIP the first time and keeps it; ``in`` and ``get``
    see only what is loaded, :meth:`available` lists what could be.

    Parameters
    ----------
    loaders : dict of str to callable
        Name -> function of no argument that loads it.
    """

    def __init__(self, loaders, **loaded):
        super().__init__(**loaded)
        self.loaders = dict(loaders)

    def __missing__(self, name):
        if name not in self.loaders:
            raise KeyError(f"no extra model {name!r}; this model set has {sorted(self.available())}")
        value = self[name] = self.loaders[name]()
        return value

    def available(self):
        """Names of the loaded and loadable extras."""
        return list(dict.fromkeys([*self, *self.loaders]))


def world_model_set(m):
    """The :class:`ModelSet` of world models ``m`` (a :class:`brainldm.models.world.WorldModels`).

    The models stay on the device and in the dtype they are in (see :func:`load_models`), and
    are frozen: gradients only ever reach the inputs that +G and MindDiffuser optimise.
    """
    for module in (m.image_encoder, m.cnn, m.captioner, m.depth_estimator):
        module.requires_grad_(False)
    ldm = LatentDiffusion(m.vae, m.unet, m.scheduler)
    device = next(m.image_encoder.parameters()).device

    def clip_forward(pixels):
        layers = m.image_encoder.forward_layers(to_module(pixels, m.image_encoder))
        layers["embedding"] = m.image_encoder.project(layers["late"])
        return layers

    def cnn_forward(pixels):
        return m.cnn.forward_layers(to_module(pixels, m.cnn))

    def inception_forward(pixels):
        return {"late": m.inception.forward_layers(to_module(pixels, m.inception))["late"]}

    m.inception.eval().requires_grad_(False)  # batch norm must read its running statistics
    inception = FeatureNet("world Inception analogue (pooled features)", inception_forward, ("late",),
                           m.inception.config.image_size, device=device)
    size = m.image_encoder.config.image_size
    nets = {
        "clip": FeatureNet("world image encoder (CLIP analogue)", clip_forward,
                           ("early", "middle", "late", "embedding"), size, device=device),
        "cnn": FeatureNet("world CNN (AlexNet analogue)", cnn_forward, ("early", "middle", "late"),
                          m.cnn.config.image_size, device=device),
        "inception": inception,
    }
    return ModelSet("world", ldm, m.text_encoder, m.uncond, size, nets,
                    extras={"captioner": m.captioner, "image_encoder": m.image_encoder,
                            "depth_estimator": m.depth_estimator, "cnn": m.cnn})


class ClipTextEncoder:
    """Stable Diffusion's CLIP text encoder: ``c`` is the last hidden state over 77 tokens."""

    def __init__(self, tokenizer, text_encoder):
        self.tokenizer, self.text_encoder = tokenizer, text_encoder

    @torch.no_grad()
    def encode_tokens(self, texts):
        """``c`` of each text: float32 (n, tokens, dim) on the CPU."""
        tokens = self.tokenizer(list(texts), padding="max_length", truncation=True,
                                max_length=self.tokenizer.model_max_length, return_tensors="pt")
        ids = tokens.input_ids.to(self.text_encoder.device)
        return self.text_encoder(ids).last_hidden_state.float().cpu()

    def encode_captions(self, captions):
        """Mean ``c`` over each image's captions (Takagi averages COCO's five): (n, 77, 768)."""
        return torch.stack([self.encode_tokens(caps).mean(0) for caps in captions])


def _normalise(pixels, mean, std):
    """Pixels in [-1, 1] to a network's input normalisation (float32, on the pixels' device)."""
    mean = torch.tensor(mean, device=pixels.device).view(1, 3, 1, 1)
    std = torch.tensor(std, device=pixels.device).view(1, 3, 1, 1)
    return ((pixels + 1) / 2 - mean) / std


def _imagenet(pixels):
    return _normalise(pixels, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def _stable_diffusion(device, dtype):
    pipe = zoo.load("sd-v1-4", device=device, dtype=dtype)
    # Takagi & Nishimoto sample with DDIM (50 steps); v1.4 ships a PNDM scheduler. Their CompVis
    # sampler never clips x0; diffusers' DDIM clips unless told (its default when the key is missing)
    ldm = LatentDiffusion(pipe.vae, pipe.unet, DDIMScheduler.from_config(pipe.scheduler.config, clip_sample=False))
    text = ClipTextEncoder(pipe.tokenizer, pipe.text_encoder)
    uncond = text.encode_tokens([""])

    clip, _ = zoo.load("clip-vit-l14", device=device, dtype=dtype)
    alexnet = zoo.load("alexnet", device=device, dtype=dtype)
    inception = zoo.load("inception-v3", device=device, dtype=dtype)

    def clip_forward(pixels):
        x = to_module(_normalise(pixels, (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
                      clip)
        out = clip.vision_model(pixel_values=x, output_hidden_states=True)
        hidden = out.hidden_states
        n = len(hidden) - 1
        embedding = clip.visual_projection(out.pooler_output)
        # the authors' layers (codes/utils/img2feat_decoded.py, l. 92-96): vision hidden_states[6] and [12] of
        # ViT-L/14's 24 (a quarter and half way up: the same fractions on smaller models) and image_embeds
        return {"early": hidden[max(1, round(n / 4))], "middle": hidden[max(1, round(n / 2))], "late": embedding,
                "embedding": embedding}

    def alexnet_forward(pixels):
        # the authors' layers (img2feat_decoded.py, l. 57-63): features.5 (max-pool after conv2), features.12
        # (max-pool after conv5) and classifier.5 (fc7 after ReLU), on the same 299 px input as Inception
        x = to_module(_imagenet(pixels), alexnet)
        acts = {}
        for index, layer in enumerate(alexnet.features):
            x = layer(x)
            if index == 5:
                acts["early"] = x
            if index == 12:
                acts["middle"] = x
        x = torch.flatten(alexnet.avgpool(x), 1)
        acts["late"] = alexnet.classifier[:6](x)
        return acts

    def inception_forward(pixels):
        acts = {}
        handle = inception.avgpool.register_forward_hook(lambda m, i, o: acts.setdefault("late", o))
        inception(to_module(_imagenet(pixels), inception))
        handle.remove()
        return acts

    nets = {
        "clip": FeatureNet("CLIP ViT-L/14", clip_forward, ("early", "middle", "late", "embedding"),
                           clip.config.vision_config.image_size, 16, device=clip.device),
        # Resize(299) + CenterCrop(299) + ImageNet normalisation for both CNNs (img2feat_decoded.py, l. 46-51)
        "cnn": FeatureNet("AlexNet", alexnet_forward, ("early", "middle", "late"), 299, device=clip.device),
        "inception": FeatureNet("Inception-v3", inception_forward, ("late",), 299, device=clip.device),
    }
    nets.update(_distance_nets(device, dtype))
    # Takagi encodes z at 320 px (4 x 40 x 40 with SD 1.4); smaller models at their own size
    resolution = min(320, pipe.unet.config.sample_size * ldm.vae_scale_factor)
    return ModelSet("stable-diffusion-v1-4", ldm, text, uncond, resolution, nets,
                    extras=_nsd_extras(nets, device, dtype))


def _distance_nets(device, dtype):
    """EfficientNet-B1 and SwAV ResNet-50 pooled features (the suite's two distances), for those whose weights exist.

    Preprocessing as MindEye's evaluation: ImageNet normalisation, 255 px for EfficientNet-B1 and
    224 px for SwAV; the layer is the global average pool.
    """
    nets = {}
    for key, (name, size) in {"efficientnet": ("efficientnet-b1", 255), "swav": ("swav-resnet50", 224)}.items():
        if zoo.search(name)[0] is None:
            continue
        module = zoo.load(name, device=device, dtype=dtype)

        def forward(pixels, module=module):
            acts = {}
            handle = module.avgpool.register_forward_hook(lambda m, i, o: acts.setdefault("pool", o))
            module(to_module(_imagenet(pixels), module))
            handle.remove()
            return acts
        nets[key] = FeatureNet(zoo.MODELS[name].purpose.removesuffix(" distance"), forward, ("pool",), size,
                               device=device)
    return nets


#: extra NSD models (loaded by :class:`LazyExtras` on first use) -> registry name (:data:`brainldm.models.zoo.MODELS`)
NSD_EXTRAS = {"captioner": "blip", "depth_estimator": "dpt-large", "depth_ldm": "sd-2-depth"}


def _nsd_extras(feature_nets, device, dtype):
    """The technical report's extra models: BLIP (+T), DPT-large (+D depth) and SD 2 depth (+D)."""
    def depth_ldm():
        pipe = zoo.load(NSD_EXTRAS["depth_ldm"], device=device, dtype=dtype)
        ldm = LatentDiffusion(pipe.vae, pipe.unet, DDIMScheduler.from_config(pipe.scheduler.config,
                                                                              clip_sample=False))
        text = ClipTextEncoder(pipe.tokenizer, pipe.text_encoder)
        resolution = min(320, pipe.unet.config.sample_size * ldm.vae_scale_factor)
        return ModelSet("stable-diffusion-2-depth", ldm, text, text.encode_tokens([""]), resolution, feature_nets)

    return LazyExtras({"captioner": lambda: zoo.load(NSD_EXTRAS["captioner"], device=device, dtype=dtype),
                       "depth_estimator": lambda: zoo.load(NSD_EXTRAS["depth_estimator"], device=device,
                                                           dtype=dtype),
                       "depth_ldm": depth_ldm})


def load_models(dataset="world", device=None, dtype=None):
    """The :class:`ModelSet` for ``dataset`` (``"world"`` or ``"nsd"``), loaded offline.

    Parameters
    ----------
    dataset : {"world", "nsd"}
    device : str or torch.device, optional
        Where every model runs: argument → ``BRAINLDM_DEVICE`` → ``cuda`` if a GPU is visible,
        else ``cpu`` (:func:`brainldm.settings.torch_device`).
    dtype : str or torch.dtype, optional
        What the models' weights and activations are in: argument → ``BRAINLDM_DTYPE`` →
        float16 on CUDA, else float32 (:func:`brainldm.settings.torch_dtype`). Weights are
        loaded directly in it; fits, statistics and metrics stay in float32.

    Returns
    -------
    models : ModelSet
        Every module frozen (no weight ever gets a gradient), on ``device`` in ``dtype``.
    """
    check_choice("dataset", dataset, MODEL_SETS)
    quiet_libraries()  # no "Loading weights" bars or tqdm warnings on chapter pages
    device = torch_device(device)
    dtype = torch_dtype(dtype, device)
    if dataset == "world":
        return world_model_set(load_world_models(device=device, dtype=dtype))
    return _stable_diffusion(device, dtype)


def describe_placement(models):
    """One line saying where ``models`` run, e.g. ``"models: stable-diffusion-v1-4 on cpu in bfloat16"``."""
    unet = models.ldm.unet
    return f"models: {models.name} on {unet.device} in {str(unet.dtype).removeprefix('torch.')}"
