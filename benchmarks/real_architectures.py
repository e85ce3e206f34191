"""The real architectures of the models brainldm uses on NSD, from their published configs, with random weights.

Nothing is downloaded: each published ``config.json`` is written out below as a Python
dict (only the keys that shape the network; the rest are library defaults), and
:func:`build` instantiates the model class from it with randomly initialised weights.
This gives the true parameter counts, activation shapes and compute of the NSD models
on a machine without their weights, for benchmarks (``benchmarks/nsd_scale.py``) and
tests.

=================  ====================================================  ==============================
name               published checkpoint (config.json)                    class
=================  ====================================================  ==============================
``sd14-unet``      ``CompVis/stable-diffusion-v1-4`` ``unet/``           ``diffusers.UNet2DConditionModel``
``sd14-vae``       ``CompVis/stable-diffusion-v1-4`` ``vae/``            ``diffusers.AutoencoderKL``
``sd14-text``      ``CompVis/stable-diffusion-v1-4`` ``text_encoder/``   ``transformers.CLIPTextModel``
``clip-vision``    ``openai/clip-vit-large-patch14`` (vision tower)      ``transformers.CLIPVisionModelWithProjection``
``blip``           ``Salesforce/blip-image-captioning-base``             ``transformers.BlipForConditionalGeneration``
``dpt-large``      ``Intel/dpt-large``                                   ``transformers.DPTForDepthEstimation``
=================  ====================================================  ==============================

    from real_architectures import build, count_parameters
    unet = build("sd14-unet")                       # bfloat16 on the CPU, weights frozen
    count_parameters(build("sd14-unet", device="meta"))   # 859_520_964, no memory used
"""

import contextlib

import torch

__all__ = ["SD14_UNET", "SD14_VAE", "SD14_TEXT", "SD14_SCHEDULER", "CLIP_VIT_L14_VISION", "BLIP_CAPTIONING_BASE",
           "DPT_LARGE", "ARCHITECTURES", "PUBLISHED_PARAMETERS", "build", "ddim_scheduler", "count_parameters",
           "checkpoint_numel", "parameter_bytes"]

# --- Stable Diffusion v1.4 ---------------------------------------------------------------------------
# huggingface.co/CompVis/stable-diffusion-v1-4/blob/main/unet/config.json. Read here through a public
# mirror of that repository, github.com/wswplay/stable-diffusion-v1-4 (unet/config.json at 295cccd:
# attention_head_dim 8, block_out_channels 320/640/1280/1280, cross_attention_dim 768, layers_per_block 2,
# sample_size 64, the block types below); the keys that file leaves to the library's defaults
# (act_fn ... norm_eps) are spelled out as in the PyTorch config of SD v1.5, the same architecture
# (github.com/HDRJ-One/runwayml-stable-diffusion-v1-5, unet/config.json at 2e7465d).
SD14_UNET = {
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "use_linear_projection": False,
}

# huggingface.co/CompVis/stable-diffusion-v1-4/blob/main/vae/config.json (mirror: wswplay/stable-diffusion-v1-4,
# vae/config.json at 295cccd); scaling_factor 0.18215 is the value later diffusers releases write into the
# file (HDRJ-One/runwayml-stable-diffusion-v1-5, vae/config.json) and their default.
SD14_VAE = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 512,
    "scaling_factor": 0.18215,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}

# huggingface.co/CompVis/stable-diffusion-v1-4/blob/main/text_encoder/config.json (the text tower of
# openai/clip-vit-large-patch14; mirror: wswplay/stable-diffusion-v1-4, text_encoder/config.json at 295cccd).
SD14_TEXT = {
    "attention_dropout": 0.0,
    "bos_token_id": 0,
    "dropout": 0.0,
    "eos_token_id": 2,
    "hidden_act": "quick_gelu",
    "hidden_size": 768,
    "initializer_factor": 1.0,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": 77,
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "pad_token_id": 1,
    "vocab_size": 49408,
}

# huggingface.co/CompVis/stable-diffusion-v1-4/blob/main/scheduler/scheduler_config.json (a PNDM scheduler;
# mirror: wswplay/stable-diffusion-v1-4, scheduler/scheduler_config.json at 0050854). Takagi & Nishimoto sample
# with DDIM from these betas; clip_sample off, as brainldm's NSD sampler has it.
SD14_SCHEDULER = {
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "trained_betas": None,
}

# --- CLIP ViT-L/14 image tower -----------------------------------------------------------------------
# huggingface.co/openai/clip-vit-large-patch14/blob/main/config.json, "vision_config" (projection_dim 768).
# Read through the same numbers in SD v1.4's safety_checker/config.json, a CLIP ViT-L/14
# (mirror: wswplay/stable-diffusion-v1-4, safety_checker/config.json at 295cccd).
CLIP_VIT_L14_VISION = {
    "attention_dropout": 0.0,
    "dropout": 0.0,
    "hidden_act": "quick_gelu",
    "hidden_size": 1024,
    "image_size": 224,
    "initializer_factor": 1.0,
    "initializer_range": 0.02,
    "intermediate_size": 4096,
    "layer_norm_eps": 1e-05,
    "num_attention_heads": 16,
    "num_channels": 3,
    "num_hidden_layers": 24,
    "patch_size": 14,
    "projection_dim": 768,
}

# --- BLIP captioner (+T) -----------------------------------------------------------------------------
# huggingface.co/Salesforce/blip-image-captioning-base/blob/main/config.json: a ViT-B/16 at 384 px and a
# BERT-base decoder. Read through the config printed in github.com/whaler404/Hf-Learn,
# transfomers_learn/api/models/multimodal_models/blip/blip.md (at 52e20df).
BLIP_CAPTIONING_BASE = {
    "image_text_hidden_size": 256,
    "initializer_factor": 1.0,
    "logit_scale_init_value": 2.6592,
    "projection_dim": 512,
    "text_config": {
        "attention_probs_dropout_prob": 0.0,
        "bos_token_id": 30522,
        "eos_token_id": 2,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "hidden_size": 768,
        "initializer_factor": 1.0,
        "initializer_range": 0.02,
        "intermediate_size": 3072,
        "is_decoder": True,
        "layer_norm_eps": 1e-12,
        "max_position_embeddings": 512,
        "num_attention_heads": 12,
        "num_hidden_layers": 12,
        "pad_token_id": 0,
        "projection_dim": 768,
        "sep_token_id": 102,
        "use_cache": True,
        "vocab_size": 30524,
    },
    "vision_config": {
        "attention_dropout": 0.0,
        "dropout": 0.0,
        "hidden_act": "gelu",
        "hidden_size": 768,
        "image_size": 384,
        "initializer_factor": 1.0,
        "initializer_range": 0.02,
        "intermediate_size": 3072,
        "layer_norm_eps": 1e-05,
        "num_attention_heads": 12,
        "num_channels": 3,
        "num_hidden_layers": 12,
        "patch_size": 16,
        "projection_dim": 512,
    },
}

# --- DPT-large (depth maps of the stimuli, +D) ------------------------------------------------------
# huggingface.co/Intel/dpt-large/blob/main/config.json: ViT-L/16 at 384 px, features taken after blocks
# 5/11/17/23, neck 256/512/1024/1024, fusion 256. The same backbone and neck numbers are inlined for
# Intel/dpt-large-ade in a public template (found by the code search; the depth checkpoint differs only
# in its head), and transformers' DPT conversion script sets them for "large" checkpoints.
DPT_LARGE = {
    "attention_probs_dropout_prob": 0.0,
    "backbone_out_indices": [5, 11, 17, 23],
    "fusion_hidden_size": 256,
    "head_in_index": -1,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.0,
    "hidden_size": 1024,
    "image_size": 384,
    "initializer_range": 0.02,
    "intermediate_size": 4096,
    "is_hybrid": False,
    "layer_norm_eps": 1e-12,
    "neck_hidden_sizes": [256, 512, 1024, 1024],
    "num_attention_heads": 16,
    "num_channels": 3,
    "num_hidden_layers": 24,
    "patch_size": 16,
    "qkv_bias": True,
    "readout_type": "project",
    "reassemble_factors": [4, 2, 1, 0.5],
}

#: name -> (library, class, config)
ARCHITECTURES = {
    "sd14-unet": ("diffusers", "UNet2DConditionModel", SD14_UNET),
    "sd14-vae": ("diffusers", "AutoencoderKL", SD14_VAE),
    "sd14-text": ("transformers", "CLIPTextModel", SD14_TEXT),
    "clip-vision": ("transformers", "CLIPVisionModelWithProjection", CLIP_VIT_L14_VISION),
    "blip": ("transformers", "BlipForConditionalGeneration", BLIP_CAPTIONING_BASE),
    "dpt-large": ("transformers", "DPTForDepthEstimation", DPT_LARGE),
}

#: name -> (values in the published checkpoint, relative tolerance, where that count comes from), to compare
#: with :func:`checkpoint_numel`. The diffusers counts are the well-known sizes of SD v1.x (e.g. 859.52M for
#: the U-Net); BLIP's and DPT's are the "Model size" the Hugging Face hub shows (rounded, hence the looser
#: tolerance). The hub counts BLIP's tied decoder output weights (30524 x 768) a second time, as its
#: checkpoint file stores them: 247.4M stored, 224.0M distinct parameters.
PUBLISHED_PARAMETERS = {
    "sd14-unet": (859_520_964, 0.001, "SD v1 U-Net, 859.52M"),
    "sd14-vae": (83_653_863, 0.001, "SD v1 VAE (kl-f8), 83.65M"),
    "sd14-text": (123_060_480, 0.001, "CLIP ViT-L/14 text tower, 123.06M"),
    "clip-vision": (303_966_208, 0.01, "CLIP ViT-L/14 image tower + projection (CLIPModel 428M - text 123M - "
                                      "text projection)"),
    "blip": (247_000_000, 0.01, "hub: Salesforce/blip-image-captioning-base, 247M params (tied weights twice)"),
    "dpt-large": (343_000_000, 0.01, "hub: Intel/dpt-large, 343M params"),
}


@contextlib.contextmanager
def _default_dtype(dtype):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _config_object(name):
    library, class_name, config = ARCHITECTURES[name]
    if library == "diffusers":
        return dict(config)
    import transformers

    config_class = getattr(transformers, class_name).config_class
    return config_class(**config)


def build(name, device="cpu", dtype=torch.bfloat16, frozen=True):
    """The architecture ``name`` (a key of :data:`ARCHITECTURES`) with random weights, in eval mode.

    Parameters
    ----------
    name : str
    device : str or torch.device
        ``"meta"`` builds it without allocating (parameter counts, shapes).
    dtype : torch.dtype
        The parameters are created in this dtype directly (no float32 copy is ever made).
    frozen : bool
        ``requires_grad_(False)`` on every parameter.

    Returns
    -------
    model : torch.nn.Module
    """
    library, class_name, _ = ARCHITECTURES[name]
    config = _config_object(name)
    with _default_dtype(dtype), torch.device(device):
        if library == "diffusers":
            import diffusers

            model = getattr(diffusers, class_name)(**config)
        else:
            import transformers

            model = getattr(transformers, class_name)(config)
    if any(p.is_floating_point() and p.dtype != dtype for p in [*model.parameters(), *model.buffers()]):
        model = model.to(dtype)  # whatever a library created in float32 follows the rest
    model.eval()
    if frozen:
        model.requires_grad_(False)
    return model


def ddim_scheduler():
    """SD v1.4's noise schedule in a :class:`diffusers.DDIMScheduler` (clip_sample off)."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(**SD14_SCHEDULER, clip_sample=False)


def count_parameters(model):
    """Number of parameters (tied weights counted once)."""
    seen, total = set(), 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


def checkpoint_numel(model):
    """Number of values in the model's state dict: tied weights counted once per name, as a checkpoint
    file stores them (integer buffers such as position ids excluded)."""
    return sum(v.numel() for v in model.state_dict().values() if v.is_floating_point())


def parameter_bytes(model, dtype=torch.bfloat16):
    """Bytes of the parameters stored in ``dtype``."""
    return count_parameters(model) * torch.empty((), dtype=dtype).element_size()
