"""Tiny random-weight versions of every real model, saved as ``BRAINLDM_MODELS`` expects them.

Used by the tests and by the chapters' ``dataset="nsd"`` smoke runs on a fabricated NSD
tree: the real code paths run end to end on this machine without any real weights.
"""

import os
import signal
import threading

import torch
import torchvision
from diffusers import (AutoencoderKL, DDIMScheduler, StableDiffusionDepth2ImgPipeline,
                       StableDiffusionImg2ImgPipeline, UNet2DConditionModel)
from transformers import (BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor,
                          CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTextConfig, CLIPTextModel,
                          CLIPTokenizer, DPTConfig, DPTForDepthEstimation, DPTImageProcessor)

from brainldm.book.cluster import run_stage
from brainldm.data.datasets.nsd_fabricate import CAPTION_WORDS

__all__ = ["save_tiny_models", "stable_diffusion_parts", "tiny_clip", "tiny_blip", "tiny_dpt", "TINY", "run_stage_killed_once"]

WORDS = list(CAPTION_WORDS)  # the tokenizers know every word of the fabricated NSD captions
TINY = 16  # hidden sizes and image sizes of every tiny model


def clip_tokenizer():
    # transformers 5: vocab and merges are given as objects (the old vocab_file= is ignored)
    vocab = ["<|startoftext|>", "<|endoftext|>"] + [f"{w}</w>" for w in WORDS] + list("abcdefghijklmnopqrstuvwxyz")
    return CLIPTokenizer(vocab={token: i for i, token in enumerate(vocab)}, merges=[], model_max_length=TINY)


def clip_text_config():
    return CLIPTextConfig(vocab_size=40, hidden_size=TINY, intermediate_size=2 * TINY, num_hidden_layers=1,
                          num_attention_heads=2, max_position_embeddings=TINY, projection_dim=TINY,
                          bos_token_id=0, eos_token_id=1, pad_token_id=1)


def stable_diffusion_parts(unet_in_channels=4):
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=unet_in_channels, out_channels=4, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=TINY, attention_head_dim=2, norm_num_groups=4)
    vae = AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=4,
                        sample_size=TINY)
    return {"unet": unet, "vae": vae, "text_encoder": CLIPTextModel(clip_text_config()),
            "tokenizer": clip_tokenizer(), "scheduler": DDIMScheduler()}


def tiny_dpt():
    return DPTForDepthEstimation(DPTConfig(
        hidden_size=TINY, num_hidden_layers=4, num_attention_heads=2, intermediate_size=2 * TINY, image_size=TINY,
        patch_size=8, backbone_out_indices=[0, 1, 2, 3], neck_hidden_sizes=[8, 8, 8, 8],
        reassemble_factors=[4, 2, 1, 0.5], fusion_hidden_size=8, head_hidden_size=8))


def bert_tokenizer():
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
    return BertTokenizer(vocab={token: i for i, token in enumerate(vocab)})


def tiny_blip():
    vision = {"hidden_size": TINY, "intermediate_size": 2 * TINY, "num_hidden_layers": 1, "num_attention_heads": 2,
              "image_size": TINY, "patch_size": 8}
    text = {"vocab_size": 5 + len(WORDS), "hidden_size": TINY, "intermediate_size": 2 * TINY,
            "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": TINY,
            "encoder_hidden_size": TINY, "bos_token_id": 2, "sep_token_id": 3, "pad_token_id": 0}
    return BlipForConditionalGeneration(BlipConfig(vision_config=vision, text_config=text))


def tiny_clip():
    vision = {"hidden_size": TINY, "intermediate_size": 2 * TINY, "num_hidden_layers": 1, "num_attention_heads": 2,
              "image_size": TINY, "patch_size": 8}
    return CLIPModel(CLIPConfig(text_config=clip_text_config().to_dict(), vision_config=vision, projection_dim=TINY))


def save_tiny_models(folder):
    """Every model of the registry, tiny, in ``folder`` laid out as BRAINLDM_MODELS expects."""
    torch.manual_seed(0)
    img2img = StableDiffusionImg2ImgPipeline(**stable_diffusion_parts(), safety_checker=None, feature_extractor=None,
                                             requires_safety_checker=False)
    img2img.save_pretrained(folder / "CompVis/stable-diffusion-v1-4")
    StableDiffusionDepth2ImgPipeline(**stable_diffusion_parts(unet_in_channels=5), depth_estimator=tiny_dpt(),
                                     feature_extractor=DPTImageProcessor(size={"height": TINY, "width": TINY})
                                     ).save_pretrained(folder / "stabilityai/stable-diffusion-2-depth")
    image_size = {"height": TINY, "width": TINY}
    for repo, model, processor in [
            ("Salesforce/blip-image-captioning-base", tiny_blip(),
             BlipProcessor(image_processor=BlipImageProcessor(size=image_size), tokenizer=bert_tokenizer())),
            ("Intel/dpt-large", tiny_dpt(), DPTImageProcessor(size=image_size)),
            ("openai/clip-vit-large-patch14", tiny_clip(),
             CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": TINY},
                                                              crop_size=image_size), tokenizer=clip_tokenizer()))]:
        model.save_pretrained(folder / repo)
        processor.save_pretrained(folder / repo)
    (folder / "torchvision").mkdir(exist_ok=True)
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), folder / "torchvision/alexnet-owt-7be5be79.pth")
    inception = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    torch.save(inception.state_dict(), folder / "torchvision/inception_v3_google-0cc3c7bd.pth")


def run_stage_killed_once(stage, *after, marker, kind="reconstructions", delay=2.0):
    """:func:`brainldm.book.cluster.run_stage`, except that the first stage of ``kind`` kills its own worker.

    For the test that a worker killed mid-task leaves the run complete and the cache intact:
    the first process to create ``marker`` (atomically) is sent SIGKILL ``delay`` seconds into
    the stage; Dask reruns the task on another worker, where ``marker`` exists.
    """
    if stage.kind == kind:
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pass
        else:
            os.close(fd)
            threading.Timer(delay, os.kill, (os.getpid(), signal.SIGKILL)).start()
    return run_stage(stage, *after)
