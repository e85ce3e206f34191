"""The one optimisation loop of the package: Adam on the inputs of a frozen generator.

``+G`` (:mod:`brainldm.generate.structural`) optimises a latent through the VAE decoder and
MindDiffuser's stage 2 (:mod:`brainldm.generate.minddiffuser`) optimises ``z`` and ``c`` through
the DDIM sampler; both are "generate an image from some inputs, score its features, step
the inputs". Weights are never optimised: every generator and feature network is frozen
(:func:`brainldm.models.loading.load_models`), so a backward pass stores and computes only what
the inputs' gradients need.

Each variable moves as ``start + spread * step`` and Adam updates ``step`` (zero at the
start): with ``spread`` 1 this is Adam on the variable itself; with ``spread`` the
variable's standard deviation, one learning rate suits variables of any scale.
"""

import numpy as np
import torch

from brainldm.errors import BrainLDMError
from brainldm.data.progress import progress_bar

__all__ = ["optimise_inputs"]


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
