"""Stimulus features: the image latent z and the text conditioning c, U-Net activations across noise levels, timesteps and layers, captions (+T) and depth (+D); each computed once per image and cached."""

from brainldm.features.stimulus import FEATURES, stimulus_features, resize_images, feature_shape
from brainldm.features.unet import STAGES, unet_layers, layer_depths, stage_steps, denoising_features, LDMFeatures, ldm_features
from brainldm.features.captions import WorldCaptionModel, BlipCaptionModel, caption_model, sentence_embeddings, caption_scores, attribute_accuracy, attribute_table, BLIP_GENERATION
from brainldm.features.depth import CONVENTIONS, CONDITIONING_CONVENTION, convert_depth, WorldDepthModel, DPTDepthModel, depth_model, depth_generator, true_depth, resize_depth, depth_correlation, depth_scores

__all__ = ["FEATURES", "stimulus_features", "resize_images", "feature_shape", "STAGES", "unet_layers", "layer_depths", "stage_steps", "denoising_features", "LDMFeatures", "ldm_features", "WorldCaptionModel", "BlipCaptionModel", "caption_model", "sentence_embeddings", "caption_scores", "attribute_accuracy", "attribute_table", "BLIP_GENERATION", "CONVENTIONS", "CONDITIONING_CONVENTION", "convert_depth", "WorldDepthModel", "DPTDepthModel", "depth_model", "depth_generator", "true_depth", "resize_depth", "depth_correlation", "depth_scores"]
