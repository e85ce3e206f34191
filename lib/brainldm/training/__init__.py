"""Training the world's models: the resumable recipe behind ``brainldm train-world``, the evaluation that fills the model card, and its report."""

from brainldm.training.metrics import cached_evaluation, HELD_OUT_BASE, held_out_ids, top1_retrieval, attribute_accuracy, depth_correlation, predict_attributes, inception_accuracy, layer_features, evaluate_world_models
from brainldm.training.report import TARGETS, training_table, quality_table, strength_series, captions_and_depth
from brainldm.training.train import STEPS, main, load_pool, train_vae, vae_scaling_factor, encode_latents, train_unet, train_cnn, train_inception, render_pool, train_image_encoder, captioner_targets, train_captioner, train_depth_estimator, update_model_card

__all__ = ["cached_evaluation", "HELD_OUT_BASE", "held_out_ids", "top1_retrieval", "attribute_accuracy", "depth_correlation", "predict_attributes", "inception_accuracy", "layer_features", "evaluate_world_models", "TARGETS", "training_table", "quality_table", "strength_series", "captions_and_depth", "STEPS", "main", "load_pool", "train_vae", "vae_scaling_factor", "encode_latents", "train_unet", "train_cnn", "train_inception", "render_pool", "train_image_encoder", "captioner_targets", "train_captioner", "train_depth_estimator", "update_model_card"]
