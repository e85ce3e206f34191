"""The technical report's extensions: captions (+T), structure (+G), depth (+D) and Table 1 assembly."""

import numpy as np
import pandas as pd
import pytest
import torch

from brainldm.generate import extensions
from brainldm.features.captions import BlipCaptionModel, WorldCaptionModel, attribute_accuracy, caption_model, caption_scores
from brainldm.features.depth import CONDITIONING_CONVENTION, DPTDepthModel, WorldDepthModel, convert_depth, depth_generator, depth_scores, true_depth
from brainldm.errors import BrainLDMError
from brainldm.features.stimulus import resize_images
from brainldm.models.ldm import LatentDiffusion, images_to_tensor, prepare_depth
from brainldm.models.loading import FeatureNet, LazyExtras, ModelSet
from brainldm.fit.ridge import correlation_score
from brainldm.generate.structural import optimise_latents, pooled_layers, structure_loss
from brainldm.models.world.nets import build


@pytest.fixture(scope="module")
def tiny_world():
    """Tiny random world models: an LDM, a CNN feature net, the captioner and the depth estimator."""
    torch.manual_seed(0)
    vae, unet, scheduler = build("vae", tiny=True), build("unet", tiny=True), build("scheduler")
    cnn, encoder = build("cnn", tiny=True).eval(), build("image_encoder", tiny=True).eval()
    captioner, depth = build("captioner", tiny=True).eval(), build("depth_estimator", tiny=True).eval()
    net = FeatureNet("tiny cnn", cnn.forward_layers, ("early", "middle", "late"), cnn.config.image_size)
    ldm = LatentDiffusion(vae.eval(), unet.eval(), scheduler)
    uncond = torch.zeros(1, 4, unet.config.cross_attention_dim)
    models = ModelSet("world", ldm, None, uncond, 64, {"cnn": net}, cache_token="tiny",
                      extras={"captioner": captioner, "image_encoder": encoder, "depth_estimator": depth, "cnn": cnn})
    return models


@pytest.fixture
def images(rng):
    return rng.integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)


# --- depth conventions (the one place where world distance meets DPT / SD 2 disparity) ---------------

def test_convert_depth_reverses_order_and_round_trips(rng):
    distance = rng.random((3, 8, 8)).astype(np.float32)
    disparity = convert_depth(distance, "distance", "disparity")
    near = np.unravel_index(distance[0].argmin(), (8, 8))
    assert disparity[0][near] == disparity[0].max()  # the nearest pixel has the largest disparity
    np.testing.assert_array_equal(convert_depth(disparity, "disparity", "distance"), distance)
    assert convert_depth(distance, "distance", "distance") is distance
    # what the U-Nets see: the min-max scaled map, mirrored
    torch.testing.assert_close(prepare_depth(disparity, (4, 4)), -prepare_depth(distance, (4, 4)))
    with pytest.raises(BrainLDMError, match="depth convention"):
        convert_depth(distance, "distance", "metres")


def test_conditioning_conventions_match_what_each_unet_was_trained_on():
    # the world U-Net learned the world's distance maps (0 near); SD 2 depth learned DPT's inverse depth
    assert CONDITIONING_CONVENTION == {"world": "distance", "stable-diffusion-2-depth": "disparity"}
    assert WorldDepthModel.convention == "distance" and DPTDepthModel.convention == "disparity"


def test_true_depth_of_the_world_is_converted_to_the_models_convention(world):
    ids = world.image_ids("test")[:3]
    class Disparity:
        convention = "disparity"
    np.testing.assert_array_equal(true_depth(world, Disparity(), ids), -world.depth(ids))
    Disparity.convention = "distance"
    np.testing.assert_array_equal(true_depth(world, Disparity(), ids), world.depth(ids))


def test_depth_generator_of_the_world_is_its_own_depth_unet(tiny_world):
    assert tiny_world.ldm.takes_depth and depth_generator(tiny_world) is tiny_world


def test_world_depth_model_representation_is_the_estimate_on_a_grid(tiny_world, images):
    model = WorldDepthModel(tiny_world.extras["depth_estimator"], 64, grid=4)
    estimate = model.estimate(images)
    maps = model.depth_from(model.representation(images))
    assert estimate.shape == (4, 64, 64) and maps.shape == (4, 4, 4)
    np.testing.assert_allclose(maps[:, 0, 0], estimate[:, :16, :16].mean((1, 2)), atol=1e-5)


def test_depth_scores_know_a_perfect_and_a_mirrored_decoder(rng):
    reference = rng.random((6, 8, 8))
    scores = depth_scores(reference, reference)
    np.testing.assert_allclose(scores["r"], 1.0)
    np.testing.assert_allclose(scores["identification"], 1.0)
    assert (scores["r chance"] < 1).all()
    np.testing.assert_allclose(depth_scores(-reference, reference)["r"], -1.0)


def test_dpt_depth_from_its_own_representation_is_its_estimate(images):
    from transformers import DPTImageProcessor

    from brainldm.testing.fixtures import TINY, tiny_dpt

    torch.manual_seed(0)
    model = DPTDepthModel(tiny_dpt().eval(), DPTImageProcessor(size={"height": TINY, "width": TINY}))
    rep = model.representation(images)
    assert rep.shape == (4, int(np.prod(model.feature_shape)))
    np.testing.assert_allclose(model.depth_from(rep), model.estimate(images), rtol=1e-4, atol=1e-5)
    gridded = DPTDepthModel(model.model, model.processor, grid=2)
    maps = gridded.depth_from(gridded.representation(images))
    assert maps.shape == (4, 2, 2)
    estimate = model.estimate(images)
    half = estimate.shape[-1] // 2
    np.testing.assert_allclose(maps[:, 0, 0], estimate[:, :half, :half].mean((1, 2)), rtol=1e-5, atol=1e-6)


# --- +T: captions ---------------------------------------------------------------------------------

def test_world_captions_from_features_equal_the_captioners(tiny_world, images):
    model = caption_model(tiny_world)
    assert isinstance(model, WorldCaptionModel)
    features = model.features(images)
    assert features.shape == (4,) + model.feature_shape
    expected = tiny_world.extras["captioner"].generate(tiny_world.extras["image_encoder"], images_to_tensor(images))
    assert model.generate(features) == expected


def test_blip_caption_model_decodes_from_given_vit_features(images):
    from transformers import BlipImageProcessor, BlipProcessor

    from brainldm.testing.fixtures import TINY, bert_tokenizer, tiny_blip

    torch.manual_seed(0)
    processor = BlipProcessor(image_processor=BlipImageProcessor(size={"height": TINY, "width": TINY}),
                              tokenizer=bert_tokenizer())
    model = caption_model(ModelSet("nsd", None, None, torch.zeros(1, 1, 1), 32, {}, cache_token="x",
                                   extras={"captioner": (tiny_blip().eval(), processor)}))
    assert isinstance(model, BlipCaptionModel)
    features = model.features(images)
    assert features.shape == (4, int(np.prod(model.feature_shape)))
    captions = model.generate(features)
    assert len(captions) == 4 and all(isinstance(c, str) for c in captions)
    assert model.generate(features) == captions  # beam search is deterministic


class WordCounts:
    """A text encoder whose sentence embedding counts words (a known answer for caption scores)."""
    vocabulary = ["red", "blue", "face", "house", "dog", "cat", "left", "right"]

    def encode_sentences(self, texts):
        counts = torch.tensor([[text.lower().split().count(w) for w in self.vocabulary] for text in texts],
                              dtype=torch.float32) + 0.01
        return torch.nn.functional.normalize(counts, dim=-1)


def test_caption_scores_know_the_answer():
    truth = [["red face"], ["blue house"], ["dog left"], ["cat right"]]
    swapped = ["blue house", "red face", "cat right", "dog left"]
    scores = caption_scores(WordCounts(), truth, {"perfect": [t[0] for t in truth], "swapped": swapped})
    np.testing.assert_allclose(scores["perfect"]["identification"], 1.0)
    np.testing.assert_allclose(scores["perfect"]["cosine"], 1.0, atol=1e-6)
    # each swapped caption loses at least to the image's own caption, and is about as far as the others
    assert (scores["swapped"]["identification"] <= 2 / 3).all()
    np.testing.assert_allclose(scores["swapped"]["cosine"], scores["chance"]["cosine"].mean(), atol=0.02)
    np.testing.assert_allclose(scores["chance"]["identification"], 0.5)
    assert (scores["chance"]["cosine"] < 0.1).all()


def test_attribute_accuracy_reads_the_main_object():
    predicted = {"place": np.array([0, 1]), "size": np.array([2, 2]), "position": np.array([0, 1]),
                 "category": np.array([[3, -1], [4, 1]]), "color": np.array([[5, -1], [6, 2]])}
    truth = {"place": np.array([0, 0]), "size": np.array([2, 1]), "position": np.array([0, 1]),
             "category": np.array([3, 1]), "color": np.array([5, 6])}
    correct = attribute_accuracy(predicted, truth)
    assert {k: v.tolist() for k, v in correct.items()} == {
        "place": [True, False], "category": [True, False], "color": [True, True], "size": [True, False],
        "position": [True, True]}


# --- +G: structure ----------------------------------------------------------------------------------

def test_pooled_layers_average_spatial_maps(tiny_world):
    net = tiny_world.feature_nets["cnn"]
    pixels = torch.rand(2, 3, 64, 64) * 2 - 1
    full = pooled_layers(net, pixels)
    pooled = pooled_layers(net, pixels, pool=2)
    channels = full["early"].shape[1] // 32 ** 2
    assert pooled["early"].shape == (2, channels * 4) and pooled["late"].shape == full["late"].shape
    torch.testing.assert_close(pooled["early"][:, 0], full["early"].reshape(2, channels, 32, 32)[:, 0, :16, :16]
                               .mean((1, 2)))


def test_structure_loss_is_the_weighted_normalised_error():
    targets = {"a": torch.tensor([[1.0, 1.0]]), "b": torch.tensor([[2.0, 0.0]])}
    features = {"a": torch.tensor([[1.0, 0.0]]), "b": torch.tensor([[0.0, 0.0]])}
    torch.testing.assert_close(structure_loss(features, targets, {"a": 2.0, "b": 1.0}), torch.tensor([2 * 0.5 + 1.0]))
    torch.testing.assert_close(structure_loss(features, targets, {"a": 1.0, "b": 0.0}), torch.tensor([0.5]))


def test_optimise_latents_lowers_the_loss_and_does_not_depend_on_the_batch(tiny_world):
    ldm, net = tiny_world.ldm, tiny_world.feature_nets["cnn"]
    generator = torch.Generator().manual_seed(1)
    z_true = torch.randn(2, 4, 8, 8, generator=generator)
    with torch.no_grad():
        targets = pooled_layers(net, ldm.vae.decode(z_true / ldm.vae.config.scaling_factor).sample.clamp(-1, 1),
                                pool=4)
    z0 = torch.randn(2, 4, 8, 8, generator=generator)
    z, loss, seconds = optimise_latents(ldm, net, z0, targets, pool=4, iterations=4, lr=0.1, progress=False)
    assert loss.shape == (5, 2) and seconds > 0
    assert (loss[-1] < loss[0]).all()
    z_one, loss_one, _ = optimise_latents(ldm, net, z0, targets, pool=4, iterations=4, lr=0.1, batch_size=1,
                                          progress=False)
    torch.testing.assert_close(z_one, z, atol=1e-4, rtol=1e-4)
    unchanged, _, _ = optimise_latents(ldm, net, z0, targets, pool=4, iterations=0, progress=False)
    torch.testing.assert_close(unchanged, z0)
    assert not any(p.grad is not None for p in ldm.vae.parameters())
    with pytest.raises(BrainLDMError, match="layer weights"):
        optimise_latents(ldm, net, z0, targets, weights={"fc8": 1.0}, progress=False)


# --- settings, lazy extras, Table 1 -----------------------------------------------------------------

def test_settings_follow_the_dataset_and_reject_unknown_names():
    world = extensions.settings_for("world", iterations=3, lr=None)
    assert world["iterations"] == 3 and world["lr"] == extensions.SETTINGS["world"]["lr"]
    assert world["n_samples"] == 1 and extensions.settings_for("nsd")["n_samples"] == 5
    assert world["roi"] == ("early", "ventral", "midventral", "midlateral", "lateral", "parietal")
    with pytest.raises(BrainLDMError, match="unknown extension settings"):
        extensions.settings_for("world", iteration=3)


def test_lazy_extras_load_once_and_only_when_asked():
    calls = []
    extras = LazyExtras({"captioner": lambda: calls.append(1) or "blip"})
    assert "captioner" not in extras and extras.available() == ["captioner"] and not calls
    assert extras["captioner"] == "blip" and extras["captioner"] == "blip"
    assert calls == [1] and "captioner" in extras
    with pytest.raises(KeyError, match="depth_ldm"):
        extras["depth_ldm"]


def _table(changes, n=20, seed=0):
    """Identification rows of two subjects where each method adds a known constant to the baseline."""
    rng = np.random.default_rng(seed)
    rows = []
    for subject in ("subj01", "subj02"):
        base = rng.uniform(0.6, 0.8, n)
        for method, change in {"baseline": {"subj01": 0.0, "subj02": 0.0}, **changes}.items():
            for metric in ("CLIP early", "CNN late"):
                rows.append(pd.DataFrame({"subject": subject, "method": method, "metric": metric,
                                          "image": np.arange(n), "score": base + change[subject]}))
    return pd.concat(rows, ignore_index=True)


def test_paired_differences_know_the_answer():
    table = _table({"+T": {"subj01": 0.1, "subj02": 0.1}, "+T+G": {"subj01": 0.2, "subj02": -0.1}})
    diff = extensions.paired_differences(table).set_index(["subject", "method", "metric"])
    row = diff.loc[("mean", "+T", "CLIP early")]
    assert row["change"] == pytest.approx(0.1) and row["ci_low"] == pytest.approx(0.1)
    assert row["ci_high"] == pytest.approx(0.1) and row["excludes_zero"]
    assert diff.loc[("subj02", "+T+G", "CNN late"), "change"] == pytest.approx(-0.1)
    assert diff.loc[("mean", "+T+G", "CNN late"), "change"] == pytest.approx(0.05)
    assert row["value"] == pytest.approx(row["baseline"] + 0.1)


def test_table1_summary_and_comparison_with_the_paper():
    table = _table({"+T": {"subj01": 0.1, "subj02": 0.3}})
    per_subject, across = extensions.table1_summary(table)
    assert list(per_subject.columns) == ["CLIP early", "CNN late"]
    gain = per_subject.loc[("subj02", "+T"), "CLIP early"] - per_subject.loc[("subj02", "baseline"), "CLIP early"]
    assert gain == pytest.approx(0.3)
    means = per_subject.xs("+T", level="method")["CLIP early"]
    assert across.loc["+T", ("CLIP early", "mean")] == pytest.approx(means.mean())
    assert across.loc["+T", ("CLIP early", "sd")] == pytest.approx(means.std(ddof=1))
    comparison = extensions.compare_with_paper(across)
    assert comparison.loc[("baseline", "paper"), "CLIP early"] == 0.759  # seed 002, CVPR baseline
    assert comparison.loc[("+T", "difference"), "CNN late"] == pytest.approx(
        across.loc["+T", ("CNN late", "mean")] - 0.915)


def test_the_reports_per_subject_table_averages_to_its_mean_row():
    from brainldm.figures.reference import table1, table1_by_subject

    means = table1_by_subject().groupby(level="method", sort=False).mean()
    np.testing.assert_allclose(means.loc[table1().index], table1(), atol=0.0006)  # the report rounds to 3 digits


def test_extension_targets_are_memory_mapped_per_image_and_reused(world, tiny_world, tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINLDM_CACHE", str(tmp_path))
    ids = world.image_ids("test")[[3, 1, 3, 0, 1]]
    tables, rows = extensions.extension_targets(world, tiny_world, ids, batch_size=2)  # 3 unique images, 2 batches
    assert list(tables) == list(extensions.TARGETS)
    assert all(isinstance(t, np.memmap) and t.dtype == np.float32 and len(t) == 3 for t in tables.values())
    np.testing.assert_array_equal(np.unique(ids)[rows], ids)
    images = world.images(ids)
    np.testing.assert_allclose(tables["caption"][rows], caption_model(tiny_world).features(images), atol=1e-6)
    net = tiny_world.feature_nets["cnn"]
    with torch.no_grad():
        late = pooled_layers(net, images_to_tensor(resize_images(images, net.input_size)), pool=4)["late"]
    np.testing.assert_allclose(tables["structure.late"][rows], late.numpy(), atol=1e-5)

    def no_features(*args, **kwargs):
        raise AssertionError("the cached tables should have been reused")

    monkeypatch.setattr(extensions, "images_to_tensor", no_features)  # only the features need it
    again, again_rows = extensions.extension_targets(world, tiny_world, ids, batch_size=2)
    np.testing.assert_array_equal(again_rows, rows)
    for name, table in tables.items():
        assert again[name].filename == table.filename
        np.testing.assert_array_equal(again[name], table)


def test_decoding_the_extensions_streamed_equals_in_memory(world, tiny_world, tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINLDM_CACHE", str(tmp_path))
    kwargs = dict(roi="early", alphas=np.logspace(1, 5, 3), n_folds=3)
    in_memory = extensions.decode_extensions(world, tiny_world, **kwargs)
    streamed = extensions.decode_extensions(world, tiny_world, stream_above=0, **kwargs)
    assert list(streamed) == list(extensions.TARGETS)
    for name, d in streamed.items():
        assert isinstance(d.predicted, np.memmap) and isinstance(d.true, np.memmap)
        expected = in_memory[name].predicted
        assert correlation_score(expected, d.predicted).min() >= 0.9999
        np.testing.assert_allclose(d.predicted, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
        np.testing.assert_array_equal(d.true, in_memory[name].true)
        np.testing.assert_allclose(d.r, in_memory[name].r, atol=1e-4)
        assert d.predicted.shape == d.true.shape == (10, d.r.size)
