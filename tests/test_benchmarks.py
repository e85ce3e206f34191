"""The benchmarks' real NSD architectures (built on the meta device: no memory, no weights) and their helpers."""

import importlib.util
import json
import subprocess
import sys
import weakref
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _module(name):
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="module")
def arch():
    return _module("real_architectures")


@pytest.fixture(scope="module")
def meta_models(arch):
    return {name: arch.build(name, device="meta") for name in arch.ARCHITECTURES}


def test_every_architecture_has_its_published_size(arch, meta_models):
    for name, model in meta_models.items():
        library, class_name, _ = arch.ARCHITECTURES[name]
        assert type(model).__name__ == class_name
        assert type(model).__module__.startswith(library)
        published, tolerance, _ = arch.PUBLISHED_PARAMETERS[name]
        assert abs(arch.checkpoint_numel(model) / published - 1) <= tolerance, name
    # the three SD v1.4 components to the parameter
    assert abs(arch.count_parameters(meta_models["sd14-unet"]) / 859.52e6 - 1) < 0.01
    assert arch.count_parameters(meta_models["sd14-unet"]) == 859_520_964
    assert arch.count_parameters(meta_models["sd14-vae"]) == 83_653_863
    assert arch.count_parameters(meta_models["sd14-text"]) == 123_060_480


def test_models_are_built_frozen_in_bfloat16(meta_models):
    for name, model in meta_models.items():
        params = list(model.parameters())
        assert all(p.dtype == torch.bfloat16 for p in params), name
        assert not any(p.requires_grad for p in params), name
        assert all(p.device.type == "meta" for p in params), name
        assert not model.training, name


def test_stable_diffusion_configs(meta_models):
    unet = meta_models["sd14-unet"].config
    assert tuple(unet.block_out_channels) == (320, 640, 1280, 1280)
    assert (unet.cross_attention_dim, unet.attention_head_dim, unet.layers_per_block, unet.sample_size) == (768, 8, 2, 64)
    assert tuple(unet.down_block_types) == ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",)
    assert tuple(unet.up_block_types) == ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3
    assert (unet.in_channels, unet.out_channels) == (4, 4)
    vae = meta_models["sd14-vae"].config
    assert tuple(vae.block_out_channels) == (128, 256, 512, 512)
    assert (vae.latent_channels, vae.scaling_factor, vae.sample_size) == (4, 0.18215, 512)
    text = meta_models["sd14-text"].config
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads, text.intermediate_size,
            text.max_position_embeddings, text.vocab_size) == (768, 12, 12, 3072, 77, 49408)


def test_image_model_configs(meta_models):
    clip = meta_models["clip-vision"].config
    assert (clip.hidden_size, clip.num_hidden_layers, clip.num_attention_heads, clip.patch_size,
            clip.image_size, clip.projection_dim) == (1024, 24, 16, 14, 224, 768)
    blip = meta_models["blip"].config.vision_config
    assert (blip.hidden_size, blip.num_hidden_layers, blip.patch_size, blip.image_size) == (768, 12, 16, 384)
    dpt = meta_models["dpt-large"].config
    assert (dpt.hidden_size, dpt.num_hidden_layers, dpt.num_attention_heads, dpt.patch_size,
            dpt.image_size) == (1024, 24, 16, 16, 384)
    assert list(dpt.neck_hidden_sizes) == [256, 512, 1024, 1024]
    assert dpt.fusion_hidden_size == 256
    assert list(dpt.backbone_out_indices) == [5, 11, 17, 23]


def test_sd14_scheduler(arch):
    scheduler = arch.ddim_scheduler()
    assert type(scheduler).__name__ == "DDIMScheduler"
    assert not scheduler.config.clip_sample
    assert (scheduler.config.beta_start, scheduler.config.beta_end) == (0.00085, 0.012)


def test_saved_tensors_counts_activations_not_weights():
    nsd_scale = _module("nsd_scale")
    layer = torch.nn.Linear(8, 16).requires_grad_(False)
    x = torch.randn(4, 8, requires_grad=True)
    with nsd_scale.SavedTensors(layer) as saved:
        h = layer(x)  # saves the frozen weight only (for x's gradient): not an activation
        y = torch.sigmoid(h)  # saves its output
        z = y * y  # saves y twice more: three saves, one storage
    assert saved.parameters_seen >= 1
    assert saved.bytes == 4 * 16 * 4
    assert saved.raw == 3 * 4 * 16 * 4
    assert saved.largest[1] == (4, 16)
    z.sum().backward()
    assert x.grad is not None and layer.weight.grad is None
    # the counter keeps no reference cycle: the graph and its saved output go when the output does
    with nsd_scale.SavedTensors() as saved:
        y = torch.sigmoid(torch.randn(3, requires_grad=True))
    ref = weakref.ref(y)
    del y
    assert ref() is None


def _run_nsd_scale(*args):
    done = subprocess.run([sys.executable, str(BENCHMARKS / "nsd_scale.py"), *args], capture_output=True,
                          text=True, timeout=120)
    return done.returncode, json.loads(done.stdout.strip().splitlines()[-1])


def test_nsd_scale_reports_a_missing_extensions_benchmark(tmp_path):
    code, result = _run_nsd_scale("--quick", "--only", "a", "--extensions-script", str(tmp_path / "missing.py"))
    assert code != 0
    assert result["extensions_peak_gb"] is None
    assert "does not exist" in result["extensions_error"]


def test_nsd_scale_reads_the_extensions_benchmark_json(tmp_path):
    script = tmp_path / "extensions_memory.py"
    script.write_text("import json, sys\nprint('log line')\n"
                      "print(json.dumps({'extensions_peak_gb': 1.5, 'quick': '--quick' in sys.argv}))\n")
    code, result = _run_nsd_scale("--quick", "--only", "a", "--extensions-script", str(script))
    assert code == 0
    assert result["extensions_peak_gb"] == 1.5
    assert result["extensions_result"]["quick"] is True


# --- benchmarks/ridge.py ----------------------------------------------------------------------------------------
def test_ridge_quick_reports_speed_memory_agreement_and_gemm_share(tmp_path):
    """The quick mode runs ours, himalaya's torch backend and the authors' recipe; its last line is the JSON summary."""
    pytest.importorskip("himalaya")
    done = subprocess.run([sys.executable, str(BENCHMARKS / "ridge.py"), "--quick", "--data-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    for key in ("speedup", "memory_ratio", "agreement", "gemm_share", "speedup_cpu", "gemm_gflops_per_s"):
        assert isinstance(result[key], float) and result[key] > 0, key
    assert {"ours", "himalaya_torch", "takagi"} <= set(result["methods"])
    assert result["agreement"] >= 0.999  # the same problem: same alphas, folds and predictions
    for feature in ("z", "c"):
        for method in result["methods"]:
            row = result["features"][feature][method]
            assert row["agreement"] >= 0.999 and 0 < row["gemm_share"] < 1.5, (feature, method)
    if result["cuda_skipped"]:
        assert "himalaya_torch_cuda skipped: " + result["cuda_skipped"] in done.stdout
    assert "ours     = sum_folds (6 n_v p^2)" in done.stdout  # the operation counts are printed with the table
    # an interrupted run resumes from its saved measurements
    again = subprocess.run([sys.executable, str(BENCHMARKS / "ridge.py"), "--quick", "--data-dir", str(tmp_path),
                            "--reuse", "--methods", "ours,takagi"], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("reusing the measurement") == 4
    assert json.loads(again.stdout.strip().splitlines()[-1])["speedup"] == pytest.approx(result["speedup"])


def test_chapter_profiles_run_each_chapter_as_a_script_with_the_profile_parameters(tmp_path):
    profiler = _module("profile_chapters")
    script = profiler.chapter_script("04_decode_captions", {"n_shown": 2, "dataset_options": {"n_train": 60}})
    assert "n_shown = 2" in script and "dataset_options = {'n_train': 60}" in script
    assert "n_shown = 6" not in script  # the chapter's own default is replaced, not repeated
    assert script.startswith("import matplotlib\nmatplotlib.use('Agg')")
    compile(script, "04_decode_captions.py", "exec")  # a valid script
    # the profile of a tiny script names the brainldm functions by cumulative time
    tiny = tmp_path / "tiny.py"
    tiny.write_text("from brainldm.models.world.nets import caption_from_attributes\n"
                    "import numpy as np\n"
                    "caption_from_attributes({'place': np.array([0]), 'size': np.array([1]),"
                    " 'position': np.array([0]), 'category': np.array([[0, -1, -1]]),"
                    " 'color': np.array([[0, -1, -1]])})\n")
    seconds = profiler.profile_run(tiny, tmp_path / "tiny.prof", tmp_path / "data", tmp_path)
    assert seconds > 0
    top = profiler.top_functions(tmp_path / "tiny.prof", 50)
    assert any("caption_from_attributes" in name for name, _ in top)
