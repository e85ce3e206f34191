"""Memory and time of brainldm's NSD models at their real size, on this machine, with random weights.

The models are the real architectures (:mod:`real_architectures`: SD v1.4's U-Net, VAE and
CLIP text tower, CLIP ViT-L/14's image tower, BLIP, DPT-large) built from their published
configs with random weights, in bfloat16 on the CPU (bf16 on the CPU catches the dtype
mismatches float16 has on CUDA). Nothing is downloaded.

(a) ``extensions_peak_gb``: peak host memory of decoding the extensions, measured by
    ``benchmarks/extensions_memory.py`` in its own process (its last stdout line is JSON).
(b) ``refine_gb_per_image_512``: activation memory of MindDiffuser's stage 2 on one 512 px
    image: the img2img start latent ``z`` (1x4x64x64) and conditioning ``c`` (1x77x768)
    through 40 DDIM steps (strength 0.8 of 50) with classifier-free guidance (a batch of 2
    through the U-Net per step), the VAE decoder and CLIP ViT-L/14's image tower, the loss
    backpropagated into ``z`` and ``c`` only (weights frozen). Counted as the bytes of the
    tensors autograd saves for backward (:class:`SavedTensors`, parameters excluded), with
    each U-Net call and the VAE decode under ``torch.utils.checkpoint`` (what the package
    runs), and without (``..._no_checkpoint``).
(c) ``img2img_batched_speedup``: seconds per sample of
    :func:`brainldm.generate.reconstruction.reconstruct` with one sample per batch over seconds per
    sample with every (image, sample) row of the run in one batch (real U-Net and VAE in
    bf16, at 256 px so that it fits the time budget).

Also the parameter counts of the six models (a check of the configs) and their weights'
bytes in bf16. GB here is 10**9 bytes.

    python benchmarks/nsd_scale.py --quick        # last line: JSON
    python benchmarks/nsd_scale.py                # every DDIM step run and backpropagated, more timings
    python benchmarks/nsd_scale.py --quick --only sizes b c     # without the extensions benchmark

``--quick`` takes 5-8 minutes on 2 quiet CPU cores for (b), (c) and the sizes, plus the
extensions benchmark's own ``--quick`` (its child process; about 15 minutes when measured
here). The full run takes about an hour here, plus the extensions' full run. The exit
status is 1 if a part could not be measured (e.g. ``extensions_memory.py`` is missing);
the JSON line then has ``null`` for it and says why.
"""

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # before tqdm is imported (it reads the variable then)

import torch  # noqa: E402

HERE = Path(__file__).resolve().parent

GB = 1e9
#: MindDiffuser's stage 2 at Takagi's settings on NSD
STEPS, STRENGTH, GUIDANCE = 50, 0.8, 5.0
RUN_STEPS = int(STEPS * STRENGTH)  # 40 DDIM steps run, two U-Net rows each (guidance)
#: CLIP layers the stage-2 loss matches (brainldm.models.loading: hidden_states[n // 3] and [2n // 3] of n = 24)
CLIP_EARLY, CLIP_MIDDLE = 8, 16


def _architectures():
    """``benchmarks/real_architectures.py`` as a module (benchmarks/ is not a package)."""
    if "real_architectures" not in sys.modules:
        import importlib.util

        spec = importlib.util.spec_from_file_location("real_architectures", HERE / "real_architectures.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["real_architectures"] = module
        spec.loader.exec_module(module)
    return sys.modules["real_architectures"]


def log(*parts):
    print(*parts, flush=True)


def _release_freed_memory():
    """Make glibc hand allocations of 1 MiB and more back to the system when freed (mmap threshold fixed).

    Otherwise freed activations stay in the heap, so that this process's resident memory
    keeps the high-water mark of every phase and the peaks of later phases add up.
    """
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
        return True
    except (OSError, AttributeError):
        return False


def _maxrss_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GB  # Linux reports KiB


class SavedTensors:
    """Bytes of the tensors autograd saves for backward while the context is active.

    Every saved tensor goes through ``torch.autograd.graph.saved_tensors_hooks``. A tensor
    whose storage is a parameter or buffer of ``modules`` (e.g. a frozen weight saved for the
    gradient of its input) is not an activation and is skipped; the others are deduplicated
    by their storage's address, so a storage saved by several operations (or several views
    of it) counts once, whole. ``raw`` is the plain sum of ``numel * element_size`` of every
    saved non-parameter tensor, without deduplication.

    Addresses are only unique while the tensors are alive: keep the graph (the output) alive
    until the count is read. Inside ``torch.utils.checkpoint`` (non-reentrant) the
    checkpoint's own hooks take over; only the inputs it keeps reach this counter.
    """

    def __init__(self, *modules):
        self.excluded = set()
        for module in modules:
            for tensor in [*module.parameters(), *module.buffers()]:
                self.excluded.add(tensor.untyped_storage().data_ptr())
        self.storages, self.raw, self.count, self.parameters_seen = {}, 0, 0, 0
        self.largest = (0, None, None)
        self._hooks = None

    def pack(self, tensor):
        try:
            storage = tensor.untyped_storage()
            key, nbytes = storage.data_ptr(), storage.nbytes()
        except (RuntimeError, NotImplementedError):  # no storage (e.g. a wrapper subclass)
            key, nbytes = ("id", id(tensor)), tensor.numel() * tensor.element_size()
        if key in self.excluded:
            self.parameters_seen += 1
            return tensor.detach()
        size = tensor.numel() * tensor.element_size()
        self.raw += size
        self.count += 1
        if key == 0:  # empty storages share address 0
            key = ("id", id(tensor))
        self.storages[key] = max(self.storages.get(key, 0), nbytes)
        if size > self.largest[0]:
            self.largest = (size, tuple(tensor.shape), str(tensor.dtype).replace("torch.", ""))
        # an alias without grad_fn: returning `tensor` itself would, for an operation's saved output, make a
        # reference cycle (output -> grad_fn -> saved output) that keeps the whole graph alive after use
        return tensor.detach()

    @staticmethod
    def unpack(tensor):
        return tensor

    @property
    def bytes(self):
        return sum(self.storages.values())

    def __enter__(self):
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self.pack, self.unpack)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc):
        self._hooks.__exit__(*exc)


class BlockShares:
    """Saved bytes that each of ``blocks`` (name -> module) adds to ``counter``, from forward hooks."""

    def __init__(self, counter, blocks):
        self.counter, self.bytes, self._start, self._handles = counter, {}, {}, []
        for name, block in blocks.items():
            self._handles.append(block.register_forward_pre_hook(self._pre(name)))
            self._handles.append(block.register_forward_hook(self._post(name)))

    def _pre(self, name):
        def hook(module, args):
            self._start[name] = self.counter.bytes
        return hook

    def _post(self, name):
        def hook(module, args, output):
            self.bytes[name] = self.bytes.get(name, 0) + self.counter.bytes - self._start.pop(name)
        return hook

    def remove(self):
        for handle in self._handles:
            handle.remove()


def _unet_blocks(unet):
    return {**{f"down_blocks.{i}": b for i, b in enumerate(unet.down_blocks)}, "mid_block": unet.mid_block,
            **{f"up_blocks.{i}": b for i, b in enumerate(unet.up_blocks)}}


def _vae_decoder_blocks(vae):
    return {"decoder.mid_block": vae.decoder.mid_block,
            **{f"decoder.up_blocks.{i}": b for i, b in enumerate(vae.decoder.up_blocks)}}


class PeakRSS:
    """Peak resident memory of this process while the context is active, sampled every 50 ms."""

    def __init__(self, interval=0.05):
        import psutil

        self.process, self.interval = psutil.Process(), interval
        self.start = self.peak = 0

    def _watch(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self):
        self.start = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


# --- model sizes ---------------------------------------------------------------------------------------

def model_sizes():
    """Parameter counts of the six architectures (built on the meta device: no memory) against the published ones."""
    arch = _architectures()
    build, checkpoint_numel, count_parameters = arch.build, arch.checkpoint_numel, arch.count_parameters
    out = {}
    for name in arch.ARCHITECTURES:
        model = build(name, device="meta")
        published, tolerance, source = arch.PUBLISHED_PARAMETERS[name]
        stored = checkpoint_numel(model)
        out[name] = {"class": type(model).__name__, "parameters": count_parameters(model),
                     "checkpoint_values": stored, "published": published, "published_source": source,
                     "relative_difference": stored / published - 1,
                     "matches_published": abs(stored / published - 1) <= tolerance,
                     "weights_gb_bf16": count_parameters(model) * 2 / GB}
        del model
    return out


# --- (a) extensions ------------------------------------------------------------------------------------

def extensions_memory(script, quick, timeout=None):
    """Run the extensions benchmark in its own process; its last stdout line is JSON with ``extensions_peak_gb``."""
    script = Path(script)
    if not script.exists():
        return {"extensions_error": f"{script} does not exist yet: extensions_peak_gb is not measured"}
    command = [sys.executable, str(script)] + (["--quick"] if quick else [])
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"extensions_error": f"{' '.join(command)} did not finish within {timeout} s"}
    seconds = time.perf_counter() - start
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        return {"extensions_error": f"{' '.join(command)} exited with {done.returncode}: " + " | ".join(tail),
                "extensions_seconds": seconds}
    try:
        result = json.loads(lines[-1])
    except json.JSONDecodeError:
        return {"extensions_error": f"the last line of {script.name}'s output is not JSON: {lines[-1][:200]!r}",
                "extensions_seconds": seconds}
    if not isinstance(result, dict) or "extensions_peak_gb" not in result:
        return {"extensions_error": f"{script.name}'s JSON has no extensions_peak_gb: {lines[-1][:200]!r}",
                "extensions_seconds": seconds}
    return {"extensions_peak_gb": result["extensions_peak_gb"], "extensions_seconds": seconds,
            "extensions_command": " ".join([Path(sys.executable).name, str(script.relative_to(HERE.parent))
                                            if script.is_relative_to(HERE.parent) else str(script)]
                                           + (["--quick"] if quick else [])),
            "extensions_result": result}


# --- (b) MindDiffuser stage 2 --------------------------------------------------------------------------

def _clip_pixels(pixels):
    """[-1, 1] pixels (n, 3, H, W) as CLIP ViT-L/14's normalised 224 px input (as brainldm.models.loading does)."""
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    pixels = torch.nn.functional.interpolate(pixels, size=(224, 224), mode="bilinear", antialias=True,
                                             align_corners=False)
    return ((pixels + 1) / 2 - mean) / std


def _structure_loss(hidden, targets, pool=8):
    """1 - Pearson r of CLIP's early and middle patch tokens (average-pooled to 8 x 8) with targets."""
    total = 0.0
    for layer, target in zip((CLIP_EARLY, CLIP_MIDDLE), targets):
        tokens = hidden[layer][:, 1:].float()
        side = int(math.isqrt(tokens.shape[1]))
        grid = tokens.transpose(1, 2).reshape(len(tokens), -1, side, side)
        a = torch.nn.functional.adaptive_avg_pool2d(grid, pool).flatten(1)
        a, b = a - a.mean(1, keepdim=True), target - target.mean(1, keepdim=True)
        total = total + 1 - (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)
    return total / 2


class Stage2:
    """MindDiffuser's stage 2, differentiable into z and c, in a few lines (a memory count, not the method).

    The U-Net and VAE take their inputs in their own dtype (bf16) and hand back float32;
    the DDIM arithmetic is float32, as in brainldm's sampler.
    """

    def __init__(self, unet, vae, clip, steps=STEPS, strength=STRENGTH, guidance=GUIDANCE, seed=0):
        ddim_scheduler = _architectures().ddim_scheduler
        self.unet, self.vae, self.clip, self.guidance = unet, vae, clip, guidance
        self.dtype = unet.dtype
        self.scheduler = ddim_scheduler()
        self.scheduler.set_timesteps(steps)
        self.timesteps = self.scheduler.timesteps[steps - int(steps * strength):]
        generator = torch.Generator().manual_seed(seed)
        self.noise = torch.randn(1, 4, 64, 64, generator=generator)
        self.uncond = torch.randn(1, 77, 768, generator=generator)
        self.targets = [torch.randn(1, 1024 * 64, generator=generator) for _ in range(2)]

    def unet_eps(self, x, t, cond):
        return self.unet(x.to(self.dtype), t, encoder_hidden_states=cond).sample.float()

    def vae_decode(self, latents):
        z = latents / self.vae.config.scaling_factor
        return self.vae.decode(z.to(self.vae.dtype)).sample.float()

    def clip_hidden(self, pixels, layers=None):
        """Hidden states of the image tower; ``layers`` truncates it (None: all 24 layers, as brainldm runs it)."""
        tower = self.clip.vision_model
        if layers is None:
            return tower(pixel_values=_clip_pixels(pixels).to(self.dtype), output_hidden_states=True).hidden_states
        hidden = [tower.pre_layrnorm(tower.embeddings(_clip_pixels(pixels).to(self.dtype)))]
        for layer in tower.encoder.layers[:layers]:
            out = layer(hidden[-1], None)
            hidden.append(out[0] if isinstance(out, tuple) else out)
        return hidden

    def run(self, z, c, checkpoint=True, n_steps=None, counter=None, marks=None):
        """One pass: z, c -> 40 DDIM steps -> VAE decoder -> CLIP -> loss. ``marks`` gets the counter after each step."""
        ckpt = torch.utils.checkpoint.checkpoint
        latents = self.scheduler.add_noise(z, self.noise, self.timesteps[:1])
        cond = torch.cat([self.uncond, c]).to(self.dtype)  # once: the same storage every step
        for i, t in enumerate(self.timesteps[:n_steps]):
            inputs = self.scheduler.scale_model_input(torch.cat([latents] * 2), t)
            if checkpoint:
                eps = ckpt(self.unet_eps, inputs, t, cond, use_reentrant=False)
            else:
                eps = self.unet_eps(inputs, t, cond)
            eps_uncond, eps_cond = eps.chunk(2)
            eps = eps_uncond + self.guidance * (eps_cond - eps_uncond)
            latents = self.scheduler.step(eps, t, latents, eta=0.0).prev_sample
            if marks is not None:
                marks.append(counter.bytes)
        decode = (lambda x: ckpt(self.vae_decode, x, use_reentrant=False)) if checkpoint else self.vae_decode
        pixels = decode(latents).clamp(-1, 1)
        if marks is not None:
            marks.append(counter.bytes)
        return _structure_loss(self.clip_hidden(pixels), self.targets).sum()


def refine_memory(unet, vae, clip, steps_measured, backward=True, package_check=True):
    """Saved-for-backward bytes of stage 2 on one 512 px image, with and without checkpointing."""
    stage = Stage2(unet, vae, clip)
    modules = (unet, vae, clip)
    out = {}

    # one U-Net forward: batch 2 (guidance) at 64 x 64, inputs that need grad, no checkpoint
    x = torch.randn(2, 4, 64, 64, requires_grad=True)
    cond = torch.randn(2, 77, 768, requires_grad=True)
    start = time.perf_counter()
    with SavedTensors(*modules) as saved:
        shares = BlockShares(saved, _unet_blocks(unet))
        eps = stage.unet_eps(x, stage.timesteps[0], cond.to(stage.dtype))
        shares.remove()
    out["unet_forward_seconds"] = time.perf_counter() - start
    out["unet_forward_saved_gb_by_block"] = {name: b / GB for name, b in shares.bytes.items()}
    out["unet_forward_saved_gb"] = saved.bytes / GB
    out["unet_forward_saved_raw_gb"] = saved.raw / GB
    out["unet_forward_largest_saved"] = list(saved.largest[1]) + [saved.largest[2]]
    log(f"  U-Net forward (2x4x64x64, bf16): {saved.bytes / GB:.3f} GB saved for backward "
        f"({saved.count} tensors, largest {saved.largest[1]} {saved.largest[2]}), {out['unet_forward_seconds']:.1f} s; "
        "by block: " + ", ".join(f"{n} {b / GB:.2f}" for n, b in shares.bytes.items()))
    del eps, saved, shares

    # one VAE decode 64 -> 512
    latents = torch.randn(1, 4, 64, 64, requires_grad=True)
    start = time.perf_counter()
    with SavedTensors(*modules) as saved:
        shares = BlockShares(saved, _vae_decoder_blocks(vae))
        pixels = stage.vae_decode(latents).clamp(-1, 1)
        shares.remove()
    out["vae_decode_seconds"] = time.perf_counter() - start
    out["vae_decode_saved_gb"] = saved.bytes / GB
    out["vae_decode_saved_gb_by_block"] = {name: b / GB for name, b in shares.bytes.items()}
    # with the decoder checkpointed block by block (diffusers' vae.enable_gradient_checkpointing()), its
    # backward holds what the blocks do not save (conv_in, the 512 px output layers) plus one block at a time
    outside = saved.bytes - sum(shares.bytes.values())
    out["vae_decode_per_block_checkpoint_peak_gb"] = (outside + max(shares.bytes.values())) / GB
    out["vae_decode_largest_saved"] = list(saved.largest[1]) + [saved.largest[2]]
    log(f"  VAE decode (1x4x64x64 -> 512 px, bf16): {saved.bytes / GB:.3f} GB saved "
        f"(largest {saved.largest[1]} {saved.largest[2]}), {out['vae_decode_seconds']:.1f} s; by block: "
        + ", ".join(f"{n.split('.', 1)[1]} {b / GB:.2f}" for n, b in shares.bytes.items())
        + f"; checkpointed block by block its backward would hold "
          f"{out['vae_decode_per_block_checkpoint_peak_gb']:.2f} GB")
    del saved, shares

    # CLIP's image tower: all 24 layers (as brainldm's feature net runs it) and only up to the middle layer
    for key, layers in (("clip_saved_gb", None), ("clip_to_middle_saved_gb", CLIP_MIDDLE)):
        with SavedTensors(*modules) as saved:
            loss = _structure_loss(stage.clip_hidden(pixels, layers), stage.targets)
        out[key] = saved.bytes / GB
        del loss, saved
    log(f"  CLIP ViT-L/14 image tower incl. loss: {out['clip_saved_gb']:.3f} GB saved (24 layers); "
        f"{out['clip_to_middle_saved_gb']:.3f} GB if it stopped at layer {CLIP_MIDDLE}")
    del pixels, latents

    # the whole pass with checkpointing, the first `steps_measured` DDIM steps run for real
    z = torch.randn(1, 4, 64, 64, requires_grad=True)
    c = torch.randn(1, 77, 768, requires_grad=True)
    marks = []
    start = time.perf_counter()
    with SavedTensors(*modules) as saved:
        marks.append(saved.bytes)
        loss = stage.run(z, c, checkpoint=True, n_steps=steps_measured, counter=saved, marks=marks)
    out["checkpointed_forward_seconds"] = time.perf_counter() - start
    measured = saved.bytes
    per_step = [b - a for a, b in zip(marks[:-2], marks[1:-1])]
    per_step_last = per_step[-1]
    graph = measured + (RUN_STEPS - steps_measured) * per_step_last
    out.update({
        "checkpointed_steps_run": steps_measured,
        "checkpointed_bytes_measured": measured,
        "checkpointed_bytes_per_step": per_step_last,
        "checkpointed_bytes_before_loop": marks[0],
        "checkpointed_bytes_vae_and_clip": measured - marks[-2],
        "checkpointed_graph_gb": graph / GB,
        "checkpointed_graph_formula": (f"measured over {steps_measured} step(s) ({measured} B) + "
                                       f"({RUN_STEPS} - {steps_measured}) x {per_step_last} B per step"),
    })
    log(f"  checkpointed pass, {steps_measured} of {RUN_STEPS} steps run: {measured} B saved, "
        f"{per_step_last} B per step -> {graph / GB:.4f} GB over {RUN_STEPS} steps "
        f"({out['checkpointed_forward_seconds']:.1f} s)")

    if backward:
        start = time.perf_counter()
        with PeakRSS() as rss:
            loss.backward()
        out["checkpointed_backward_seconds"] = time.perf_counter() - start
        out["checkpointed_backward_rss_growth_gb"] = (rss.peak - rss.start) / GB
        grads = {name: v.grad for name, v in (("z", z), ("c", c))}
        out["gradients"] = {name: None if g is None else {"dtype": str(g.dtype).replace("torch.", ""),
                                                          "finite": bool(torch.isfinite(g).all()),
                                                          "norm": float(g.float().norm())}
                            for name, g in grads.items()}
        out["weights_got_gradients"] = sum(p.grad is not None for m in modules for p in m.parameters())
        log(f"  backward through {steps_measured} checkpointed step(s) + VAE + CLIP: "
            f"{out['checkpointed_backward_seconds']:.1f} s, resident memory grew by "
            f"{out['checkpointed_backward_rss_growth_gb']:.2f} GB; gradients {out['gradients']}")
    del loss, saved

    u, v, k = out["unet_forward_saved_gb"], out["vae_decode_saved_gb"], graph / GB
    out["refine_gb_per_image_512"] = k + u + v
    out["refine_gb_per_image_512_formula"] = (
        "checkpointed graph + one U-Net forward (batch 2, 64x64) + one VAE decode (64 -> 512) "
        f"= {k:.4f} + {u:.4f} + {v:.4f} GB (the recomputed segments' activations, both counted)")
    out["refine_gb_per_image_512_one_segment"] = k + max(u, v)
    out["refine_gb_per_image_512_vae_per_block_checkpoint"] = k + max(u, out["vae_decode_per_block_checkpoint_peak_gb"])
    # without checkpointing every U-Net call keeps its activations; the checkpointed graph already holds the
    # per-step inputs (which the U-Net's own saves would include), so this overstates by 40 x those few kB
    out["refine_gb_per_image_512_no_checkpoint"] = k + RUN_STEPS * u + v
    out["refine_gb_per_image_512_no_checkpoint_formula"] = (
        f"checkpointed graph + {RUN_STEPS} x one U-Net forward + one VAE decode = "
        f"{k:.4f} + {RUN_STEPS} x {u:.4f} + {v:.4f} GB")

    if package_check:
        out.update(_package_sampler_check(unet, vae, z.detach(), c.detach(), stage, modules))
    return out


def _package_sampler_check(unet, vae, z, c, stage, modules):
    """Does brainldm's own differentiable sampler run in bf16, and what does one checkpointed step keep?"""
    try:
        from brainldm.models.ldm import LatentDiffusion

        ldm = LatentDiffusion(vae, unet, _architectures().ddim_scheduler())
        if "checkpoint" not in __import__("inspect").signature(ldm.sample).parameters:
            return {"package_sampler": "LatentDiffusion.sample has no checkpoint argument"}
        z, c = z.clone().requires_grad_(True), c.clone().requires_grad_(True)
        # strength 1/50 runs one step of a 50-step schedule: the graph of one checkpointed step
        with SavedTensors(*modules) as saved:
            latents = ldm.sample(z, c, stage.noise, strength=1 / STEPS, guidance_scale=GUIDANCE,
                                 num_inference_steps=STEPS, uncond=stage.uncond, checkpoint=True)
        return {"package_sampler": "ok", "package_sampler_one_step_saved_bytes": saved.bytes,
                "package_sampler_latents_dtype": str(latents.dtype).replace("torch.", "")}
    except Exception as error:  # a report, not a crash: this is what the benchmark is for
        return {"package_sampler": f"{type(error).__name__}: {error}"}


# --- (c) img2img seconds per sample --------------------------------------------------------------------

def img2img_speed(unet, vae, n_images, n_samples, num_inference_steps, repeats, size=256, sampler_alone=True):
    """Seconds per sample of brainldm.generate.reconstruction.reconstruct (X_zc), one row per batch vs all rows in one."""
    from brainldm.models.ldm import LatentDiffusion
    from brainldm.generate.reconstruction import reconstruct

    ldm = LatentDiffusion(vae, unet, _architectures().ddim_scheduler())
    side = size // 8
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(n_images, 4, side, side, generator=generator)
    c = torch.randn(n_images, 77, 768, generator=generator)
    uncond = torch.randn(1, 77, 768, generator=generator)
    rows = n_images * n_samples
    settings = dict(strength=STRENGTH, guidance_scale=GUIDANCE, num_inference_steps=num_inference_steps,
                    which=("X_zc",))
    out = {"img2img_px": size, "img2img_images": n_images, "img2img_samples_per_image": n_samples,
           "img2img_num_inference_steps": num_inference_steps,
           "img2img_steps_run": int(num_inference_steps * STRENGTH), "img2img_batch_sizes": [1, rows]}

    def timed(run):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        return time.perf_counter() - wall, time.process_time() - cpu

    def one_run(batch_size, images=n_images, samples=n_samples):
        return lambda: reconstruct(ldm, z[:images], c[:images], uncond, n_samples=samples, batch_size=batch_size,
                                   **settings)

    try:  # warm-up (allocator, oneDNN kernels): one sample, one DDIM step
        reconstruct(ldm, z[:1], c[:1], uncond, n_samples=1, batch_size=1, **{**settings, "num_inference_steps": 2})
    except Exception as error:
        out["img2img_error"] = f"{type(error).__name__}: {error}"
        log(f"  reconstruct failed with bf16 models: {out['img2img_error']}")
        return out
    times = {1: [], rows: []}
    threads = torch.get_num_threads()
    # interleaved A B B A ..., so that a machine that gets busier or quieter slows both alike
    order = [b for r in range(repeats) for b in ((1, rows) if r % 2 == 0 else (rows, 1))]
    for batch_size in order:
        wall, cpu = timed(one_run(batch_size))
        times[batch_size].append((wall, cpu))
        log(f"  reconstruct X_zc, {rows} samples, batch_size {batch_size}: {wall:.1f} s wall, {cpu:.1f} s CPU "
            f"(this process had {cpu / wall / threads:.0%} of {threads} cores)")
    best = {b: min(t[0] for t in ts) for b, ts in times.items()}
    best_cpu = {b: min(t[1] for t in ts) for b, ts in times.items()}
    share = min(cpu / wall / threads for ts in times.values() for wall, cpu in ts)
    out["img2img_seconds_per_sample_one_at_a_time"] = best[1] / rows
    out["img2img_seconds_per_sample_batched"] = best[rows] / rows
    out["img2img_batched_speedup"] = best[1] / best[rows]
    out["img2img_batched_speedup_cpu_time"] = best_cpu[1] / best_cpu[rows]
    out["img2img_runs_seconds_wall_cpu"] = {str(b): ts for b, ts in times.items()}
    out["img2img_min_core_share"] = share
    # other processes on the cores make wall times meaningless (OpenMP threads wait for a descheduled partner)
    out["img2img_contended"] = share < 0.8
    out["img2img_formula"] = (f"min over {repeats} interleaved run(s) of reconstruct(..., batch_size=1) wall time / "
                              f"min of reconstruct(..., batch_size={rows}) ({n_images} images x {n_samples} samples); "
                              "the _cpu_time variant divides this process's CPU seconds instead")

    if not sampler_alone:
        return out
    # the sampler alone (no VAE): what batching buys the U-Net
    noise = torch.randn(rows, 4, side, side, generator=generator)
    z_rows, c_rows = z.repeat_interleave(n_samples, 0), c.repeat_interleave(n_samples, 0)

    def sampler(batch_size):
        def run():
            with torch.no_grad():
                for first in range(0, rows, batch_size):
                    part = slice(first, first + batch_size)
                    ldm.sample(z_rows[part], c_rows[part], noise[part], strength=STRENGTH,
                               guidance_scale=GUIDANCE, num_inference_steps=num_inference_steps, uncond=uncond)
        return run
    try:
        sampler_times = {b: min(timed(sampler(b))[0] for _ in range(repeats)) for b in (1, rows)}
        out["sampler_seconds_per_sample_one_at_a_time"] = sampler_times[1] / rows
        out["sampler_seconds_per_sample_batched"] = sampler_times[rows] / rows
        out["sampler_batched_speedup"] = sampler_times[1] / sampler_times[rows]
    except Exception as error:
        out["sampler_error"] = f"{type(error).__name__}: {error}"
    return out


# --- main ----------------------------------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="stage 2: run 1 of the 40 DDIM steps (the rest extrapolated) and no backward pass; "
                             "a small img2img timing; the extensions benchmark's --quick")
    parser.add_argument("--only", nargs="+", choices=("sizes", "a", "b", "c"), default=("sizes", "a", "b", "c"),
                        help="parts to run (default all)")
    parser.add_argument("--extensions-script", default=str(HERE / "extensions_memory.py"),
                        help="the extensions benchmark (default benchmarks/extensions_memory.py)")
    parser.add_argument("--extensions-timeout", type=float, default=None, help="seconds (default none)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    mmap_threshold_fixed = _release_freed_memory()
    # random weights can drive activations into subnormal floats, which real weights do not and which the
    # CPU handles slowly: flush them, so that timings reflect the architecture
    torch.set_flush_denormal(True)
    started = time.perf_counter()
    result = {"quick": args.quick, "dtype": "bfloat16", "device": "cpu", "threads": torch.get_num_threads(),
              "torch": torch.__version__, "gb": "10**9 bytes",
              "malloc_mmap_threshold_fixed": mmap_threshold_fixed, "flush_denormal": True}
    failed = []

    if "a" in args.only:  # first, in its own process, before this one holds any model
        log("(a) extension decoding, peak host memory (its own process)")
        result.update(extensions_memory(args.extensions_script, args.quick, args.extensions_timeout))
        if "extensions_error" in result:
            failed.append("extensions")
            log(f"  NOT MEASURED: {result['extensions_error']}")
        else:
            log(f"  extensions_peak_gb = {result['extensions_peak_gb']} ({result['extensions_seconds']:.0f} s)")

    if "sizes" in args.only:
        log("model sizes (published configs, random weights)")
        sizes = model_sizes()
        result["models"] = sizes
        log(f"  {'model':<12} {'class':<30} {'parameters':>14} {'published':>14} {'diff':>8} {'bf16 GB':>8}")
        for name, s in sizes.items():
            log(f"  {name:<12} {s['class']:<30} {s['parameters']:>14,} {s['published']:>14,} "
                f"{s['relative_difference']:>+8.2%} {s['weights_gb_bf16']:>8.3f}")
            if not s["matches_published"]:
                failed.append(f"size of {name}")
        result["weights_gb_bf16_refine"] = sum(sizes[n]["weights_gb_bf16"] for n in ("sd14-unet", "sd14-vae",
                                                                                      "clip-vision"))

    unet = vae = None
    if "b" in args.only or "c" in args.only:
        build = _architectures().build
        start = time.perf_counter()
        unet, vae = build("sd14-unet"), build("sd14-vae")
        result["build_seconds_unet_vae"] = time.perf_counter() - start
        log(f"built SD v1.4 U-Net + VAE in bf16 with random weights in {result['build_seconds_unet_vae']:.0f} s "
            f"(peak RSS so far {_maxrss_gb():.2f} GB)")

    if "b" in args.only:
        log(f"(b) MindDiffuser stage 2, one 512 px image, {RUN_STEPS} DDIM steps x 2 U-Net rows, bf16")
        clip = _architectures().build("clip-vision")
        try:
            result.update(refine_memory(unet, vae, clip, steps_measured=1 if args.quick else RUN_STEPS,
                                        backward=not args.quick))
        except Exception as error:
            result["refine_error"] = f"{type(error).__name__}: {error}"
            failed.append("refine")
            log(f"  FAILED: {result['refine_error']}")
        del clip
        if "refine_gb_per_image_512" in result:
            log(f"  refine_gb_per_image_512 (checkpointed) = {result['refine_gb_per_image_512']:.3f} GB"
                f"   [{result['refine_gb_per_image_512_formula']}]")
            log(f"  refine_gb_per_image_512_no_checkpoint = {result['refine_gb_per_image_512_no_checkpoint']:.2f} GB"
                f"   [{result['refine_gb_per_image_512_no_checkpoint_formula']}]")
            log(f"  with the VAE decoder also checkpointed block by block: "
                f"{result['refine_gb_per_image_512_vae_per_block_checkpoint']:.3f} GB (one segment at a time; "
                f"now {result['refine_gb_per_image_512_one_segment']:.3f} GB)")
            log(f"  brainldm's LatentDiffusion.sample(checkpoint=True) in bf16: {result.get('package_sampler')}")

    if "c" in args.only:
        images, samples, steps, repeats = (2, 2, 5, 2) if args.quick else (4, 2, 10, 4)
        log(f"(c) img2img via brainldm.generate.reconstruction.reconstruct at 256 px, {images} images x {samples} samples, "
            f"{int(steps * STRENGTH)} of {steps} DDIM steps")
        result.update(img2img_speed(unet, vae, images, samples, steps, repeats, sampler_alone=not args.quick))
        if "img2img_error" in result:
            failed.append("img2img")
        else:
            log(f"  seconds per sample: one at a time {result['img2img_seconds_per_sample_one_at_a_time']:.2f}, "
                f"batched {result['img2img_seconds_per_sample_batched']:.2f} -> "
                f"img2img_batched_speedup = {result['img2img_batched_speedup']:.2f} "
                f"(from CPU time {result['img2img_batched_speedup_cpu_time']:.2f}"
                + (f"; sampler alone {result['sampler_batched_speedup']:.2f}" if "sampler_batched_speedup" in result
                   else "") + ")")
            if result["img2img_contended"]:
                log(f"  WARNING: other processes held the cores (this one had as little as "
                    f"{result['img2img_min_core_share']:.0%} of them in a run): the wall-time speedup is unreliable; "
                    "rerun on a quiet machine, or read img2img_batched_speedup_cpu_time")

    result["load_average"] = list(os.getloadavg())
    result["peak_rss_gb"] = _maxrss_gb()
    result["seconds"] = time.perf_counter() - started
    result["failed"] = failed
    for key in ("extensions_peak_gb", "refine_gb_per_image_512", "img2img_batched_speedup"):
        result.setdefault(key, None)
    log(f"peak RSS {result['peak_rss_gb']:.2f} GB, {result['seconds']:.0f} s, load average "
        f"{', '.join(f'{x:.1f}' for x in result['load_average'])}"
        + (f"; NOT MEASURED / FAILED: {', '.join(failed)}" if failed else ""))
    print(json.dumps(result, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
