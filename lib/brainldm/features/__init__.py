"""Stimulus features: the image latent z and the text conditioning c, U-Net activations across noise levels, timesteps and layers, captions (+T) and depth (+D); each computed once per image and cached."""

from brainldm.features.stimulus import FEATURES, resize_images, feature_shape, stimulus_features
from brainldm.features.unet import STAGES, unet_layers, layer_depths, stage_steps, denoising_features, LDMFeatures, ldm_features
from brainldm.features.captions import BlipGeneration, WorldCaptionModel, BlipCaptionModel, caption_model, sentence_embeddings
from brainldm.features.depth import CONVENTIONS, CONDITIONING_CONVENTION, convert_depth, WorldDepthModel, DPTDepthModel, depth_model, depth_generator, true_depth, depth_correlation
from brainldm.features.layers import pooled_layers, layer_slices, feature_net_token

__all__ = ["FEATURES", "resize_images", "feature_shape", "stimulus_features", "STAGES", "unet_layers", "layer_depths", "stage_steps", "denoising_features", "LDMFeatures", "ldm_features", "BlipGeneration", "WorldCaptionModel", "BlipCaptionModel", "caption_model", "sentence_embeddings", "CONVENTIONS", "CONDITIONING_CONVENTION", "convert_depth", "WorldDepthModel", "DPTDepthModel", "depth_model", "depth_generator", "true_depth", "depth_correlation", "pooled_layers", "layer_slices", "feature_net_token"]
