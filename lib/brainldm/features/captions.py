"""``+T``: captions decoded from fMRI (Takagi & Nishimoto, technical report, section 2.1).

The report predicts, from fMRI, the features BLIP's image encoder (a ViT) gives the
seen image, then lets BLIP's text decoder write a caption from the predicted
features (beam search with 3 beams, 5 to 20 tokens, repetition penalty 1.5), and
conditions Stable Diffusion on that caption instead of on a decoded ``c``.

Both captioners sit behind one small interface, a *caption model*:

``features(images) -> (n, d)``
    What the captioner reads from an image, flattened (the target of decoding).
``generate(features) -> list of str``
    Captions written from features, e.g. features predicted from fMRI.

:class:`WorldCaptionModel` wraps the world's image encoder and captioner;
:class:`BlipCaptionModel` wraps BLIP. :func:`caption_model` picks the one of a
model set. :func:`sentence_embeddings` embeds captions with a model set's text
encoder, for :func:`brainldm.evaluate.decoded.caption_scores`.
"""

from dataclasses import asdict, dataclass

import numpy as np
import torch

from brainldm.data.progress import progress_bar
from brainldm.errors import BrainLDMError
from brainldm.features.stimulus import resize_images
from brainldm.models.ldm import images_to_tensor, to_module
from brainldm.models.loading import weights_digest
from brainldm.models.world.nets import Captioner, caption_from_attributes

__all__ = ["BlipGeneration", "WorldCaptionModel", "BlipCaptionModel", "caption_model", "sentence_embeddings"]


@dataclass(frozen=True)
class BlipGeneration:
    """How BLIP writes a caption; the defaults are Takagi & Nishimoto's (``codes/caption/BLIP/decode_captions.py``).

    Attributes
    ----------
    num_beams : int
        Beam search with 3 beams.
    min_length, max_length : int
        5 to 20 tokens; ``max_length`` counts the prompt's tokens and is capped at the text
        decoder's position embeddings.
    repetition_penalty : float
    prompt : str
        BLIP's prompt, which the written captions start with (and lose).
    """

    num_beams: int = 3
    min_length: int = 5
    max_length: int = 20
    repetition_penalty: float = 1.5
    prompt: str = "a picture of "


class WorldCaptionModel:
    """The world's captioner (the BLIP analogue) as a caption model.

    Parameters
    ----------
    captioner : brainldm.models.world.nets.Captioner
        Reads its own encoder's late layer and pooled middle layer.
    batch_size : int
    """

    name = "world captioner"

    def __init__(self, captioner, batch_size=256):
        self.captioner, self.batch_size = captioner, int(batch_size)

    @property
    def cache_token(self):
        return f"world-captioner-{weights_digest(self.captioner)}"

    @property
    def feature_shape(self):
        """Shape of one image's features, from the captioner's config."""
        return (self.captioner.in_features,)

    @torch.no_grad()
    def features(self, images):
        """The captioner's input of uint8 images (n, H, W, 3): float32 (n, in_features)."""
        size = self.captioner.config.image_size
        out = [self.captioner.features(to_module(
                   images_to_tensor(resize_images(images[i:i + self.batch_size], size)), self.captioner)
               ).float().cpu() for i in range(0, len(images), self.batch_size)]
        return torch.cat(out).numpy() if out else np.zeros((0,) + self.feature_shape, np.float32)

    def attributes(self, features):
        """The attributes the captioner reads from ``features`` (n, in_features) (see ``Captioner``)."""
        return self.captioner.attributes_from_features(np.asarray(features, np.float32))

    def generate(self, features):
        """Captions written from ``features`` (n, in_features): list of n str."""
        return caption_from_attributes(self.attributes(features))


class BlipCaptionModel:
    """BLIP as a caption model: its ViT's last hidden state is the feature, its text decoder writes.

    Parameters
    ----------
    model : transformers.BlipForConditionalGeneration
    processor : transformers.BlipProcessor
    generation : BlipGeneration, optional
        How captions are written (default Takagi & Nishimoto's).
    batch_size : int
    input_size : int or None
        The authors' input (``codes/caption/BLIP/img2feat_blip.py``, l. 27-43): images resized to
        240 px and scaled to [0, 1] without normalisation, the ViT's position embeddings
        interpolated to that grid. None: BLIP's processor (384 px, normalised).
    """

    name = "BLIP"

    def __init__(self, model, processor, generation=None, batch_size=16, input_size=240):
        self.model, self.processor = model, processor
        self.input_size = None if input_size is None else int(input_size)
        generation = generation or BlipGeneration()
        self.generation = {k: v for k, v in asdict(generation).items() if k != "prompt"}
        self.prompt, self.batch_size = generation.prompt, int(batch_size)

    @property
    def cache_token(self):
        return f"blip-{weights_digest(self.model.vision_model)}-{self.generation}-{self.prompt!r}-{self.input_size}"

    @property
    def feature_shape(self):
        """``(tokens, hidden)`` of the ViT's last hidden state, from the vision config."""
        vision = self.model.config.vision_config
        size = self.input_size or vision.image_size
        return ((size // vision.patch_size) ** 2 + 1, vision.hidden_size)

    @torch.no_grad()
    def features(self, images):
        """ViT features of uint8 images (n, H, W, 3): float32 (n, tokens * hidden)."""
        out = []
        for start in range(0, len(images), self.batch_size):
            part = images[start:start + self.batch_size]
            if self.input_size:
                pixels = torch.from_numpy(resize_images(part, self.input_size)).permute(0, 3, 1, 2).float() / 255
            else:
                pixels = self.processor(images=list(part), return_tensors="pt")["pixel_values"]
            hidden = self.model.vision_model(pixel_values=to_module(pixels, self.model),
                                             interpolate_pos_encoding=bool(self.input_size)).last_hidden_state
            out.append(hidden.flatten(1).float().cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, int(np.prod(self.feature_shape))), np.float32)

    @torch.no_grad()
    def generate(self, features):
        """Captions written by BLIP's text decoder from ViT ``features`` (n, tokens * hidden)."""
        text = self.model.config.text_config
        tokenizer = self.processor.tokenizer
        prompt = tokenizer(self.prompt, return_tensors="pt").input_ids[:, :-1]  # drop [SEP], as BLIP does
        prompt[:, 0] = text.bos_token_id
        settings = dict(self.generation)
        settings["max_length"] = min(settings["max_length"], text.max_position_embeddings)
        settings["min_length"] = min(settings["min_length"], settings["max_length"])
        features = torch.as_tensor(np.asarray(features, np.float32)).reshape((-1,) + self.feature_shape)
        captions = []
        for start in progress_bar(range(0, len(features), self.batch_size), desc="BLIP captions",
                                  show=len(features) > self.batch_size):
            embeds = features[start:start + self.batch_size].to(self.model.device, self.model.dtype)
            ids = self.model.text_decoder.generate(
                input_ids=prompt.repeat(len(embeds), 1).to(self.model.device),
                eos_token_id=text.sep_token_id, pad_token_id=text.pad_token_id,
                encoder_hidden_states=embeds,
                encoder_attention_mask=torch.ones(embeds.shape[:-1], dtype=torch.long, device=embeds.device),
                **settings)
            for row in ids:
                caption = tokenizer.decode(row, skip_special_tokens=True).strip()
                start_words = self.prompt.strip()
                captions.append(caption[len(start_words):].strip() if caption.startswith(start_words) else caption)
        return captions


def caption_model(models, **options):
    """The caption model of a :class:`brainldm.models.loading.ModelSet`.

    World: :class:`WorldCaptionModel`; NSD: :class:`BlipCaptionModel` (BLIP is loaded
    on first use). ``options`` go to the constructor (e.g. BLIP's ``generation`` settings).
    """
    captioner = models.extras["captioner"]
    if isinstance(captioner, Captioner):
        return WorldCaptionModel(captioner, **options)
    if isinstance(captioner, tuple) and len(captioner) == 2:
        return BlipCaptionModel(*captioner, **options)
    raise BrainLDMError(f"models.extras['captioner'] is a {type(captioner).__name__}; expected the world "
                        "Captioner or a (BlipForConditionalGeneration, BlipProcessor) pair from brainldm.models.zoo.load")


@torch.no_grad()
def sentence_embeddings(text_encoder, texts):
    """Unit-norm sentence embeddings of ``texts`` with a model set's text encoder.

    The world's MiniLM pools its tokens (its own ``encode_sentences``); CLIP's text
    encoder gives its pooled (end-of-text) output.

    Returns
    -------
    embeddings : float32 array of shape (n, dim)
    """
    if hasattr(text_encoder, "encode_sentences"):
        return text_encoder.encode_sentences(list(texts)).numpy()
    tokenizer, model = text_encoder.tokenizer, text_encoder.text_encoder
    tokens = tokenizer(list(texts), padding="max_length", truncation=True,
                       max_length=tokenizer.model_max_length, return_tensors="pt")
    pooled = model(tokens.input_ids.to(model.device)).pooler_output.float().cpu()
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()
