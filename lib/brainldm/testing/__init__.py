"""Test support: tiny random-weight models of the real architectures (Stable Diffusion parts, BLIP, DPT) and fabricated NSD trees, for the tests and benchmarks."""

from brainldm.testing.fixtures import save_tiny_models, stable_diffusion_parts, tiny_clip, tiny_blip, tiny_dpt, TINY, run_stage_killed_once

__all__ = ["save_tiny_models", "stable_diffusion_parts", "tiny_clip", "tiny_blip", "tiny_dpt", "TINY", "run_stage_killed_once"]
