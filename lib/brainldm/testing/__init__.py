"""Test support: tiny random-weight models of the real architectures (Stable Diffusion parts, BLIP, DPT) and fabricated NSD trees, for the tests and benchmarks."""

from brainldm.testing.fixtures import WORDS, TINY, clip_tokenizer, clip_text_config, stable_diffusion_parts, tiny_dpt, bert_tokenizer, tiny_blip, tiny_clip, save_tiny_models, run_stage_killed_once

__all__ = ["WORDS", "TINY", "clip_tokenizer", "clip_text_config", "stable_diffusion_parts", "tiny_dpt", "bert_tokenizer", "tiny_blip", "tiny_clip", "save_tiny_models", "run_stage_killed_once"]
