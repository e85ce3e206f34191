"""brainldm: reconstruct what a person saw from fMRI with a latent diffusion model."""

from brainldm.settings import enforce_offline as _enforce_offline

_enforce_offline()

__version__ = "0.1.0"
