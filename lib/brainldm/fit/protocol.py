"""The authors' protocol and ours: every choice where brainldm's defaults differ from the published code.

Takagi & Nishimoto's code (github.com/yu-takagi/StableDiffusionReconstruction, cited as
``codes/...`` below) is the reference on NSD: :meth:`Protocol.authors` reproduces it and is the
default there. :meth:`Protocol.brainldm` is this book's choice where we think theirs can be
improved; the world keeps it. A chapter selects one with its ``protocol`` parameter, and the
book's fidelity table (appendix) lists each choice with the test that pins it.

==================  ======================================================  ===========================
choice              authors                                                 brainldm
==================  ======================================================  ===========================
identification      mean r over the 5 samples, strict wins                  the same (``per_sample`` is
                    (``codes/utils/identification.py``, lines 72–87)        an option, for comparison)
shared_noise        ``seed_everything(42)`` in each image's process, so     independent noise per
                    sample k starts from the same noise for every image     (image, sample)
                    (``codes/diffusion_sd1/diffusion_decoding.py`` l. 86,
                    196–200)
init_latent         a posterior sample of the VAE (``get_first_stage_       the posterior mean
                    encoding``, l. 179)
noise_level         ``stochastic_encode`` noises to DDIM index              diffusers: noised to the
                    ``int(strength * steps)`` (t = 801 at 0.8 / 50) and      first timestep run (781)
                    denoises from the one below (781), l. 146, 200–203
ridge               StandardScaler, himalaya RidgeCV without intercept,     grouped 5-fold CV (repeats
                    5 unshuffled folds, alphas 1e-6 … 1 for z and c         of an image together), an
                    (``codes/utils/ridge.py``, l. 40–53)                    intercept, alphas 0.1 … 1e7
==================  ======================================================  ===========================
"""

from dataclasses import dataclass, replace

from brainldm.errors import check_choice

__all__ = ["Protocol", "PROTOCOLS", "protocol_for"]


@dataclass(frozen=True)
class Protocol:
    """One set of the choices in the table of the module's notes.

    Attributes
    ----------
    name : str
    identification : {"authors", "per_sample"}
        :func:`brainldm.evaluate.metrics.identification_from_correlations`'s rule.
    shared_noise : bool
        Sample k of every image starts from the same noise.
    init_latent : {"sample", "mean"}
        ``X_z``'s re-encoded latent: a posterior sample (drawn from the sample's noise
        generator) or the posterior mean.
    noise_level : {"compvis", "diffusers"}
        img2img noises ``z`` to the DDIM timestep one step above the first one run
        (CompVis's ``stochastic_encode``) or to the first one run (diffusers).
    ridge : {"authors", "brainldm"}
        The decoders' recipe (see :mod:`brainldm.fit.decoding`).
    """

    name: str
    identification: str = "authors"
    shared_noise: bool = False
    init_latent: str = "mean"
    noise_level: str = "diffusers"
    ridge: str = "brainldm"

    def __post_init__(self):
        check_choice("identification rule", self.identification, ("authors", "per_sample"))
        check_choice("init_latent", self.init_latent, ("sample", "mean"))
        check_choice("noise_level", self.noise_level, ("compvis", "diffusers"))
        check_choice("ridge recipe", self.ridge, ("authors", "brainldm"))

    @classmethod
    def authors(cls):
        """Takagi & Nishimoto's published code, choice by choice."""
        return cls("authors", identification="authors", shared_noise=True, init_latent="sample",
                   noise_level="compvis", ridge="authors")

    @classmethod
    def brainldm(cls):
        """This book's choices."""
        return cls("brainldm")

    def but(self, **changes):
        """A copy with some choices changed (named ``<name>+<choice>=<value>``)."""
        label = ",".join(f"{k}={v}" for k, v in changes.items())
        return replace(self, name=f"{self.name}+{label}", **changes)


#: the named protocols a chapter's ``protocol`` parameter selects
PROTOCOLS = {"authors": Protocol.authors(), "brainldm": Protocol.brainldm()}


def protocol_for(protocol, dataset):
    """The :class:`Protocol` named ``protocol``, or the dataset's default (authors on NSD, ours on the world)."""
    if isinstance(protocol, Protocol):
        return protocol
    if protocol is None:
        protocol = "authors" if dataset == "nsd" else "brainldm"
    return PROTOCOLS[check_choice("protocol", protocol, PROTOCOLS)]
