"""The models: a model set per dataset (the world's small trained models, or Stable Diffusion v1.4 with its CLIP text encoder, BLIP, DPT, AlexNet and Inception-v3 on NSD), loaded offline on the device and in the dtype the reader chooses, and the latent diffusion wrapper with the one DDIM sampler every later stage uses (differentiable when asked)."""

from brainldm.models.ldm import check_sampling, SamplerSettings, SAMPLER_DEFAULTS, sampler_settings, images_to_tensor, resize, to_module, tensor_to_images, prepare_depth, LatentDiffusion
from brainldm.models.zoo import ModelSpec, MODELS, OPTIONAL, how_to_get, search, locate, available, default_device_dtype, load, torchvision_hash_problem
from brainldm.models.world import MODEL_NAMES, WorldModels, weights_dir, load_world_model, load_world_models, model_card
from brainldm.models.loading import MODEL_SETS, weights_digest, FeatureNet, ModelSet, LazyExtras, world_model_set, ClipTextEncoder, NSD_EXTRAS, load_models, describe_placement

__all__ = ["check_sampling", "SamplerSettings", "SAMPLER_DEFAULTS", "sampler_settings", "images_to_tensor", "resize", "to_module", "tensor_to_images", "prepare_depth", "LatentDiffusion", "ModelSpec", "MODELS", "OPTIONAL", "how_to_get", "search", "locate", "available", "default_device_dtype", "load", "torchvision_hash_problem", "MODEL_NAMES", "WorldModels", "weights_dir", "load_world_model", "load_world_models", "model_card", "MODEL_SETS", "weights_digest", "FeatureNet", "ModelSet", "LazyExtras", "world_model_set", "ClipTextEncoder", "NSD_EXTRAS", "load_models", "describe_placement"]
