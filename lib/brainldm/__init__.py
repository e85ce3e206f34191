"""brainldm: reconstruct what a person saw from fMRI with a latent diffusion model."""

from brainldm.settings import enforce_offline as _enforce_offline
from brainldm.settings import tune_allocator as _tune_allocator

_enforce_offline()
_tune_allocator()

__version__ = "0.1.0"
