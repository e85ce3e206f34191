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
model set. :func:`caption_scores` measures how well decoded captions describe the
seen images: two-way identification and cosine similarity in a sentence-embedding
space, beside the captions of the seen images themselves (a ceiling) and chance.
"""

import numpy as np
import torch

from brainldm.errors import BrainLDMError
from brainldm.features.stimulus import resize_images
from brainldm.models.ldm import images_to_tensor, to_module
from brainldm.data.progress import progress_bar

__all__ = ["WorldCaptionModel", "BlipCaptionModel", "caption_model", "sentence_embeddings", "caption_scores",
           "attribute_accuracy", "attribute_table", "BLIP_GENERATION"]

#: Takagi & Nishimoto's BLIP settings (codes/caption/BLIP/decode_captions.py): beam search,
#: 3 beams, 5-20 tokens, repetition penalty 1.5, after BLIP's prompt "a picture of "
BLIP_GENERATION = {"num_beams": 3, "min_length": 5, "max_length": 20, "repetition_penalty": 1.5,
                   "prompt": "a picture of "}


class WorldCaptionModel:
    """The world's captioner (the BLIP analogue) as a caption model.

    Parameters
    ----------
    image_encoder : brainldm.models.world.nets.ImageEncoder
    captioner : brainldm.models.world.nets.Captioner
        Reads the image encoder's late layer and pooled middle layer.
    batch_size : int
    """

    name = "world captioner"

    def __init__(self, image_encoder, captioner, batch_size=256):
        self.image_encoder, self.captioner, self.batch_size = image_encoder, captioner, int(batch_size)

    @property
    def cache_token(self):
        from brainldm.models.loading import weights_digest

        return f"world-captioner-{weights_digest(self.image_encoder, self.captioner)}"

    @property
    def feature_shape(self):
        """Shape of one image's features, from the captioner's config."""
        return (self.captioner.config.in_features,)

    @torch.no_grad()
    def features(self, images):
        """The captioner's input of uint8 images (n, H, W, 3): float32 (n, in_features)."""
        size = self.image_encoder.config.image_size
        out = [self.captioner.features(self.image_encoder, to_module(
                   images_to_tensor(resize_images(images[i:i + self.batch_size], size)), self.image_encoder)
               ).float().cpu() for i in range(0, len(images), self.batch_size)]
        return torch.cat(out).numpy() if out else np.zeros((0,) + self.feature_shape, np.float32)

    def attributes(self, features):
        """The attributes the captioner reads from ``features`` (n, in_features) (see ``Captioner``)."""
        return self.captioner.attributes_from_features(np.asarray(features, np.float32))

    def generate(self, features):
        """Captions written from ``features`` (n, in_features): list of n str."""
        from brainldm.models.world.nets import caption_from_attributes

        return caption_from_attributes(self.attributes(features))


class BlipCaptionModel:
    """BLIP as a caption model: its ViT's last hidden state is the feature, its text decoder writes.

    Parameters
    ----------
    model : transformers.BlipForConditionalGeneration
    processor : transformers.BlipProcessor
    num_beams, min_length, max_length, repetition_penalty, prompt
        Generation settings; defaults :data:`BLIP_GENERATION`. ``max_length`` counts the
        prompt's tokens and is capped at the text decoder's position embeddings.
    batch_size : int
    input_size : int or None
        The authors' input (``codes/caption/BLIP/img2feat_blip.py``, l. 27-43): images resized to
        240 px and scaled to [0, 1] without normalisation, the ViT's position embeddings
        interpolated to that grid. None: BLIP's processor (384 px, normalised).
    """

    name = "BLIP"

    def __init__(self, model, processor, num_beams=3, min_length=5, max_length=20, repetition_penalty=1.5,
                 prompt="a picture of ", batch_size=16, input_size=240):
        self.model, self.processor = model, processor
        self.input_size = None if input_size is None else int(input_size)
        self.generation = {"num_beams": int(num_beams), "min_length": int(min_length),
                           "max_length": int(max_length), "repetition_penalty": float(repetition_penalty)}
        self.prompt, self.batch_size = prompt, int(batch_size)

    @property
    def cache_token(self):
        from brainldm.models.loading import weights_digest

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
    on first use). ``options`` go to the constructor (e.g. BLIP's generation settings).
    """
    from brainldm.models.world.nets import Captioner

    captioner = models.extras["captioner"]
    if isinstance(captioner, Captioner):
        return WorldCaptionModel(models.extras["image_encoder"], captioner, **options)
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


def caption_scores(text_encoder, true_captions, captions, seed=0):
    """How well captions describe the seen images, per image.

    Parameters
    ----------
    text_encoder : object
        A model set's text encoder (see :func:`sentence_embeddings`).
    true_captions : list of n lists of str
        The seen images' captions (COCO's five on NSD).
    captions : dict of str to list of n str
        Captions to score, e.g. ``{"decoded": ..., "seen image": ...}``.
    seed : int
        Seeds the shuffled pairing that gives chance.

    Returns
    -------
    scores : dict of str to dict of str to array (n,)
        For each entry of ``captions``: ``identification``, the two-way identification of
        the caption among all captions by correlation with the image's true captions'
        mean embedding (chance 0.5), and ``cosine``, its mean cosine similarity to
        the image's true captions. ``"chance"``: the first entry's captions paired with
        other images (a derangement), whose ``cosine`` is the chance level of ``cosine``
        and whose ``identification`` is 0.5.
    """
    from brainldm.evaluate.metrics import shuffled, two_way_identification

    n = len(true_captions)
    counts = [len(caps) for caps in true_captions]
    if min(counts, default=0) < 1:
        raise BrainLDMError("every image needs at least one true caption to score captions against")
    true = sentence_embeddings(text_encoder, [text for caps in true_captions for text in caps]).astype(np.float64)
    owner = np.repeat(np.arange(n), counts)
    true_mean = np.zeros((n, true.shape[1]))
    np.add.at(true_mean, owner, true)
    true_mean /= np.linalg.norm(true_mean, axis=1, keepdims=True)

    def score(texts):
        emb = sentence_embeddings(text_encoder, texts).astype(np.float64)
        cosine = np.bincount(owner, weights=(true * emb[owner]).sum(1), minlength=n) / counts
        return emb, cosine

    scores = {}
    for name, texts in captions.items():
        if len(texts) != n:
            raise BrainLDMError(f"{len(texts)} captions under {name!r} for {n} images")
        emb, cosine = score(texts)
        scores[name] = {"identification": two_way_identification(true_mean, emb), "cosine": cosine}
    first = next(iter(captions))
    scores["chance"] = {"identification": np.full(n, 0.5),
                        "cosine": score(list(shuffled(np.array(captions[first], dtype=object), seed)))[1]}
    return scores


def attribute_accuracy(attributes, truth):
    """Which images' main-object and scene attributes a captioner got right (world).

    Parameters
    ----------
    attributes : dict
        Predicted attributes as the world captioner returns them (``place``, ``size``,
        ``position`` (n,); ``category``, ``color`` (n, objects)).
    truth : dict
        :func:`brainldm.models.world.nets.scene_attributes` of the seen scenes.

    Returns
    -------
    correct : dict of str to bool array (n,)
        ``place``, ``category``, ``color``, ``size``, ``position`` (of the main object).
    """
    return {name: np.asarray(attributes[name] if np.ndim(attributes[name]) == 1 else attributes[name][:, 0])
            == np.asarray(truth[name]) for name in ("place", "category", "color", "size", "position")}


def attribute_table(attributes, truth):
    """Accuracy of each attribute, per source of captions, beside the majority-class chance level.

    Parameters
    ----------
    attributes : dict of str to dict
        Source name (e.g. ``"decoded"``) -> predicted attributes (see :func:`attribute_accuracy`).
    truth : dict
        :func:`brainldm.models.world.nets.scene_attributes` of the seen scenes.

    Returns
    -------
    table : pandas DataFrame
        Index attribute; one column per source, then ``chance`` (the most frequent true
        value's share: always guessing it).
    """
    import pandas as pd

    table = pd.DataFrame({source: {name: correct.mean() for name, correct in attribute_accuracy(attrs, truth).items()}
                          for source, attrs in attributes.items()})
    table["chance"] = [np.unique(np.asarray(truth[name]), return_counts=True)[1].max() / len(truth[name])
                       for name in table.index]
    return table
