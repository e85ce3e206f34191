"""The registry of real models, on tiny random-weight models of the same classes saved in Hugging Face layout."""

import shutil

import huggingface_hub.constants
import numpy as np
import pytest
import torch
import torchvision
from diffusers import StableDiffusionDepth2ImgPipeline, StableDiffusionImg2ImgPipeline, UNet2DConditionModel
from transformers import BlipForConditionalGeneration, BlipProcessor, CLIPModel, CLIPProcessor, DPTForDepthEstimation, DPTImageProcessor

from brainldm.models import zoo
from brainldm.errors import BrainLDMError
from brainldm.testing.fixtures import TINY, save_tiny_models

@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    save_tiny_models(folder)
    return folder


@pytest.fixture(autouse=True)
def isolated_caches(tmp_path, monkeypatch):
    """No test looks at the user's Hugging Face or torch caches."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf_hub"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("BRAINLDM_DATA", str(tmp_path / "home"))


@pytest.fixture
def models(saved_models, monkeypatch):
    monkeypatch.setenv("BRAINLDM_MODELS", str(saved_models))
    return saved_models


def test_registry_names_the_papers_models():
    assert {name: spec.repo_id for name, spec in zoo.MODELS.items()} == {
        "sd-v1-4": "CompVis/stable-diffusion-v1-4",
        "sd-2-depth": "stabilityai/stable-diffusion-2-depth",
        "blip": "Salesforce/blip-image-captioning-base",
        "dpt-large": "Intel/dpt-large",
        "clip-vit-l14": "openai/clip-vit-large-patch14",
        "alexnet": "torchvision/alexnet-owt-7be5be79.pth",
        "inception-v3": "torchvision/inception_v3_google-0cc3c7bd.pth",
        "efficientnet-b1": "torchvision/efficientnet_b1-c27df63c.pth",
        "swav-resnet50": "torchvision/swav_800ep_pretrain.pth.tar"}
    assert zoo.MODELS["efficientnet-b1"].filename == \
        torchvision.models.EfficientNet_B1_Weights.IMAGENET1K_V2.url.rsplit("/", 1)[1]
    assert zoo.MODELS["alexnet"].filename == torchvision.models.AlexNet_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[1]
    assert zoo.MODELS["inception-v3"].filename == \
        torchvision.models.Inception_V3_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[1]


def test_stable_diffusion_img2img_loads_from_the_model_folder_and_runs(models):
    assert zoo.locate("sd-v1-4") == models / "CompVis/stable-diffusion-v1-4"
    pipe = zoo.load("sd-v1-4")
    assert isinstance(pipe, StableDiffusionImg2ImgPipeline) and pipe.safety_checker is None
    assert pipe.device.type == "cpu" and pipe.unet.dtype == torch.float32
    saved = UNet2DConditionModel.from_pretrained(models / "CompVis/stable-diffusion-v1-4/unet")
    torch.testing.assert_close(pipe.unet.conv_in.weight, saved.conv_in.weight)
    image = torch.rand(1, 3, TINY, TINY, generator=torch.Generator().manual_seed(0))
    out = pipe(prompt="a photo of a cat", image=image, strength=0.8, num_inference_steps=4, guidance_scale=5.0,
               generator=torch.Generator().manual_seed(0), output_type="np").images
    assert out.shape == (1, TINY, TINY, 3) and np.isfinite(out).all()


def test_stable_diffusion_depth_loads_with_its_depth_estimator(models):
    pipe = zoo.load("sd-2-depth", dtype="float32")
    assert isinstance(pipe, StableDiffusionDepth2ImgPipeline)
    assert isinstance(pipe.depth_estimator, DPTForDepthEstimation)
    assert pipe.unet.config.in_channels == pipe.vae.config.latent_channels + 1  # latent + depth


@pytest.mark.parametrize("name, model_class, processor_class", [
    ("blip", BlipForConditionalGeneration, BlipProcessor),
    ("dpt-large", DPTForDepthEstimation, DPTImageProcessor),
    ("clip-vit-l14", CLIPModel, CLIPProcessor)])
def test_transformers_models_load_with_their_processor(models, name, model_class, processor_class):
    model, processor = zoo.load(name)
    assert isinstance(model, model_class) and isinstance(processor, processor_class)
    assert not model.training and model.dtype == torch.float32
    saved = model_class.from_pretrained(zoo.locate(name))
    first = next(iter(saved.state_dict()))
    torch.testing.assert_close(model.state_dict()[first], saved.state_dict()[first])


def test_blip_captions_an_image(models):
    model, processor = zoo.load("blip")
    inputs = processor(images=np.zeros((TINY, TINY, 3), np.uint8), return_tensors="pt")
    tokens = model.generate(**inputs, max_new_tokens=3)
    assert isinstance(processor.decode(tokens[0], skip_special_tokens=True), str)


@pytest.mark.parametrize("name, builder", [("alexnet", "alexnet"), ("inception-v3", "inception_v3")])
def test_torchvision_weights_from_the_model_folder_or_torch_hub(models, tmp_path, monkeypatch, name, builder):
    model = zoo.load(name)
    assert isinstance(model, getattr(torchvision.models, {"alexnet": "AlexNet"}.get(builder, "Inception3")))
    assert not model.training
    saved = torch.load(zoo.locate(name), weights_only=True, mmap=True)
    key = next(iter(saved))
    torch.testing.assert_close(model.state_dict()[key], saved[key])
    if name == "inception-v3":
        assert model.transform_input  # what the ImageNet weights expect
    hub = tmp_path / "torch/hub/checkpoints"  # the same file in torch hub's cache is found too
    hub.mkdir(parents=True)
    (hub / zoo.MODELS[name].filename).symlink_to(zoo.locate(name))
    monkeypatch.setenv("BRAINLDM_MODELS", str(tmp_path / "empty"))
    assert zoo.locate(name) == hub / zoo.MODELS[name].filename


def test_the_hugging_face_cache_is_used_when_the_model_folder_lacks_a_model(models, tmp_path, monkeypatch):
    repo = tmp_path / "hf_hub/models--Intel--dpt-large"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs/main").write_text("0123abcd")
    shutil.copytree(models / "Intel/dpt-large", repo / "snapshots/0123abcd")
    monkeypatch.setenv("BRAINLDM_MODELS", str(tmp_path / "empty"))
    assert zoo.locate("dpt-large") == repo / "snapshots/0123abcd"
    model, _ = zoo.load("dpt-large")
    assert isinstance(model, DPTForDepthEstimation)


def test_device_and_dtype(models, monkeypatch):
    assert zoo.default_device_dtype() == (torch.device("cpu"), torch.float32)
    with monkeypatch.context() as gpu:
        gpu.setattr(torch.cuda, "is_available", lambda: True)
        assert zoo.default_device_dtype() == (torch.device("cuda"), torch.float16)
        assert zoo.default_device_dtype("cpu") == (torch.device("cpu"), torch.float32)
    model, _ = zoo.load("dpt-large", dtype="bfloat16")
    assert model.dtype == torch.bfloat16
    with pytest.raises(BrainLDMError, match="unknown dtype 'float17'"):
        zoo.default_device_dtype(dtype="float17")


def test_available_reports_found_and_missing(models, tmp_path, monkeypatch):
    # the tiny set has every model but the optional distance networks
    assert all((path is None) == (name in zoo.OPTIONAL) for name, path in zoo.available().items())
    monkeypatch.setenv("BRAINLDM_MODELS", str(tmp_path / "empty"))
    assert zoo.available() == dict.fromkeys(zoo.MODELS)


def test_missing_model_names_both_places_and_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINLDM_MODELS", str(tmp_path / "models"))
    with pytest.raises(BrainLDMError) as error:
        zoo.load("sd-v1-4")
    message = str(error.value)
    for expected in ["CompVis/stable-diffusion-v1-4", str(tmp_path / "models/CompVis/stable-diffusion-v1-4"),
                     str(tmp_path / "hf_hub/models--CompVis--stable-diffusion-v1-4"),
                     "hf download CompVis/stable-diffusion-v1-4"]:
        assert expected in message
    with pytest.raises(BrainLDMError, match="alexnet-owt-7be5be79.pth") as error:
        zoo.locate("alexnet")
    assert "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth" in str(error.value)
    assert str(tmp_path / "torch/hub/checkpoints") in str(error.value)
    with pytest.raises(BrainLDMError, match="unknown model 'sd-v9'"):
        zoo.locate("sd-v9")


def test_a_model_folder_missing_its_vae(models, tmp_path, monkeypatch):
    repo = "CompVis/stable-diffusion-v1-4"
    broken = shutil.copytree(models / repo, tmp_path / "models" / repo)
    shutil.rmtree(broken / "vae")
    monkeypatch.setenv("BRAINLDM_MODELS", str(tmp_path / "models"))
    with pytest.raises(BrainLDMError, match="incomplete, missing vae/config.json") as error:
        zoo.load("sd-v1-4")
    assert "hf download CompVis/stable-diffusion-v1-4" in str(error.value)


def test_corrupt_weights_are_one_clear_error(models, tmp_path, monkeypatch):
    broken = shutil.copytree(models / "Intel/dpt-large", tmp_path / "models/Intel/dpt-large")
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    monkeypatch.setenv("BRAINLDM_MODELS", str(tmp_path / "models"))
    with pytest.raises(BrainLDMError, match="could not load it") as error:
        zoo.load("dpt-large")
    assert str(broken) in str(error.value)
