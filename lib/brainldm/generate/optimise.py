"""The one optimisation loop of the package: Adam on the inputs of a frozen generator, and its loss.

``+G`` (:mod:`brainldm.generate.structural`) optimises a latent through the VAE decoder and
MindDiffuser's stage 2 (:mod:`brainldm.generate.minddiffuser`) optimises ``z`` and ``c`` through
the DDIM sampler; both are "generate an image from some inputs, score its features, step
the inputs" (:func:`optimise_inputs`), both score the features with :func:`feature_loss`, and
both keep their settings in a :class:`CheckedSettings` dataclass. Weights are never optimised:
every generator and feature network is frozen (:func:`brainldm.models.loading.load_models`), so
a backward pass stores and computes only what the inputs' gradients need.

Each variable moves as ``start + spread * step`` and Adam updates ``step`` (zero at the
start): with ``spread`` 1 this is Adam on the variable itself; with ``spread`` the
variable's standard deviation, one learning rate suits variables of any scale.
"""

import dataclasses

import matplotlib.pyplot as plt
import numpy as np
import torch

from brainldm.data.progress import progress_bar
from brainldm.errors import BrainLDMError, ParameterError, check_choice, check_parameter

__all__ = ["optimise_inputs", "LOSSES", "feature_loss", "plot_losses", "CheckedSettings"]

#: the kinds of :func:`feature_loss`
LOSSES = ("relative", "correlation", "mse")


def optimise_inputs(start, generate, loss, iterations, lr, spread=None, progress=True, desc="optimisation"):
    """Minimise ``loss(generate(inputs))`` over the inputs with Adam.

    Parameters
    ----------
    start : dict of str to tensor
        The variables' starting values (on the generator's device); each image's loss
        must depend on its own rows only.
    generate : callable
        ``generate(variables) -> pixels`` with ``variables`` a dict like ``start``.
    loss : callable
        ``loss(pixels) -> tensor of shape (n,)``, one value per image.
    iterations : int
        Adam steps (0 evaluates the start only).
    lr : float
        Adam's step size, in units of ``spread``.
    spread : dict of str to float or tensor, optional
        Scale of each variable's step (default 1).
    progress : bool
    desc : str
        The progress bar's label.

    Returns
    -------
    variables : dict of str to tensor
        The optimised values (detached).
    losses : float array of shape (iterations + 1, n)
        Each image's loss before every step and after the last.
    first, last : float32 tensors (n, 3, H, W)
        The generated pixels at the start and at the end (detached).
    """
    iterations = int(iterations)
    if iterations < 0 or not lr > 0:
        raise BrainLDMError(f"need iterations >= 0 and lr > 0, found {iterations} and {lr}")
    spread = {name: 1.0 for name in start} if spread is None else spread
    steps = {name: torch.zeros_like(value, requires_grad=True) for name, value in start.items()}
    optimizer = torch.optim.Adam(list(steps.values()), lr=lr)

    def current():
        return {name: start[name] + spread[name] * steps[name] for name in start}

    losses, first = [], None
    for iteration in progress_bar(range(iterations + 1), desc=desc, show=progress):
        final = iteration == iterations
        with torch.set_grad_enabled(not final):
            pixels = generate(current())
            value = loss(pixels)
        losses.append(value.detach().float().cpu().numpy())
        if first is None:
            first = pixels.detach()
        if final:
            break
        optimizer.zero_grad()
        value.sum().backward()
        optimizer.step()
    variables = {name: value.detach() for name, value in current().items()}
    return variables, np.stack(losses), first, pixels.detach()


def feature_loss(features, targets, weights=None, kind="relative", standard=None):
    """Per-image loss between an image's features and their targets, summed over layers with weights.

    Per layer ``l``, with ``f`` the image's features and ``t`` the target:

    ``"relative"`` (``+G``, after Shen et al. 2019)
        ``|f - t|^2 / |t|^2``.
    ``"correlation"`` (MindDiffuser here)
        ``1 - r(f, t)``, the Pearson correlation over the layer's features: a ridge prediction
        is shrunk towards the mean, and a correlation ignores the scale.
    ``"mse"`` (the MindDiffuser authors' choice)
        ``mean((f - t)^2) / var(t)``.

    Parameters
    ----------
    features, targets : dict of str to tensor of shape (n, d_layer)
        E.g. :func:`brainldm.features.layers.pooled_layers` of generated images, and decoded features.
    weights : dict of str to float, optional
        Weight of each layer (default 1 for each layer of ``targets``); layers of weight 0 are skipped.
    kind : {"relative", "correlation", "mse"}
    standard : dict of str to (tensor, tensor), optional
        Per layer ``(mean, scale)`` of shape (d_layer,): both sides become ``(x - mean) / scale``
        first, so that the loss weighs how an image departs from the average image rather than
        the layout every image shares.

    Returns
    -------
    loss : tensor of shape (n,)
    """
    check_choice("loss", kind, LOSSES)
    weights = {layer: 1.0 for layer in targets} if weights is None else weights
    total = 0.0
    for layer, weight in weights.items():
        if not weight:
            continue
        a = features[layer]
        b = targets[layer].to(a.device, a.dtype)
        if standard is not None:
            mean, scale = (v.to(a.device, a.dtype) for v in standard[layer])
            a, b = (a - mean) / scale, (b - mean) / scale
        if kind == "relative":
            value = ((a - b) ** 2).sum(1) / (b ** 2).sum(1).clamp_min(1e-8)
        elif kind == "correlation":
            a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
            value = 1 - (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)
        else:
            value = ((a - b) ** 2).mean(1) / b.var(1).clamp_min(1e-12)
        total = total + weight * value
    return total


def plot_losses(curves, reference=None, ax=None, xlabel="iteration"):
    """Each optimisation's loss, averaged over images, along its iterations.

    Parameters
    ----------
    curves : dict of str to array of shape (iterations + 1, n)
        The ``losses`` of :func:`optimise_inputs` of each run, by label.
    reference : dict of str to float, optional
        Levels drawn as dashed lines (e.g. the loss of the seen images themselves).
    ax : matplotlib Axes, optional
    xlabel : str

    Returns
    -------
    ax : matplotlib Axes
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3))
    for label, curve in curves.items():
        curve = np.asarray(curve)
        ax.plot(np.arange(len(curve)), curve.mean(1), marker="o", ms=3, label=f"{label} (mean over images)")
    for k, (label, level) in enumerate((reference or {}).items()):
        ax.axhline(level, color=f"C{len(curves) + k}", ls="--", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("loss")
    ax.legend(fontsize=7)
    ax.figure.tight_layout()
    return ax


class CheckedSettings:
    """Base of a frozen dataclass of settings, checked once when it is made.

    A subclass is a ``@dataclass(frozen=True)`` that names the rule of each checked field in
    ``RULES`` (field -> :class:`brainldm.errors.Rule`) and how its messages call it in ``KIND``
    (the chapter parameter that holds its overrides, e.g. ``"extension"``); it may check more
    in ``_check``. A bad value raises a :class:`~brainldm.errors.ParameterError` that names the
    field, the value and what is allowed; a list (or a single string) given for a ``many`` rule
    becomes a tuple.
    """

    RULES = {}
    KIND = "settings"

    def __post_init__(self):
        for name, rule in self.RULES.items():
            value = getattr(self, name)
            value = (value,) if rule.many and isinstance(value, str) else value  # one ROI for a list of ROIs
            value = check_parameter(f"{self.KIND}[{name!r}]", value, rule)
            object.__setattr__(self, name, tuple(value) if rule.many else value)
        self._check()

    def _check(self):
        """Checks across fields (none here)."""

    def replace(self, **overrides):
        """A copy with the ``overrides`` that are not None (an unknown name is a :class:`ParameterError`)."""
        known = [field.name for field in dataclasses.fields(self)]
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            raise ParameterError(f"unknown {self.KIND} settings {unknown}; valid: {known}")
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def as_dict(self):
        """The settings as a plain dict (for cache keys and printing)."""
        return dataclasses.asdict(self)

    def __str__(self):
        """``<KIND> settings: name=value, ...`` (a nested dataclass on a line of its own), for a chapter to print."""
        own, nested = [], []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if dataclasses.is_dataclass(value):
                nested.append(f"{field.name}: " + ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(value).items()))
            else:
                own.append(f"{field.name}={value}")
        return "\n".join([f"{self.KIND} settings: " + ", ".join(own)] + nested)
