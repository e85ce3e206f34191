"""The models: a model set per dataset (the world's small trained models, or Stable Diffusion v1.4 with its CLIP text encoder, BLIP, DPT, AlexNet and Inception-v3 on NSD), loaded offline on the device and in the dtype the reader chooses, and the latent diffusion wrapper with the one DDIM sampler every later stage uses (differentiable when asked)."""

from brainldm.models.ldm import LatentDiffusion, SamplerSettings, SAMPLER_DEFAULTS, sampler_settings, check_sampling, images_to_tensor, tensor_to_images, prepare_depth, to_module
from brainldm.models.zoo import ModelSpec, MODELS, OPTIONAL, search, locate, how_to_get, load, available, default_device_dtype, torchvision_hash_problem
from brainldm.models.world import MODEL_NAMES, WorldModels, weights_dir, load_world_models, model_card
from brainldm.models.loading import ModelSet, FeatureNet, load_models, world_model_set, weights_digest, ClipTextEncoder, MODEL_SETS, LazyExtras, NSD_EXTRAS, describe_placement

__all__ = ["LatentDiffusion", "SamplerSettings", "SAMPLER_DEFAULTS", "sampler_settings", "check_sampling", "images_to_tensor", "tensor_to_images", "prepare_depth", "to_module", "ModelSpec", "MODELS", "OPTIONAL", "search", "locate", "how_to_get", "load", "available", "default_device_dtype", "torchvision_hash_problem", "MODEL_NAMES", "WorldModels", "weights_dir", "load_world_models", "model_card", "ModelSet", "FeatureNet", "load_models", "world_model_set", "weights_digest", "ClipTextEncoder", "MODEL_SETS", "LazyExtras", "NSD_EXTRAS", "describe_placement"]
