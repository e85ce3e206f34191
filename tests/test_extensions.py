"""The technical report's extensions: captions (+T), structure (+G), depth (+D) and Table 1 assembly."""

import numpy as np
import pandas as pd
import pytest
import torch

from brainldm.errors import BrainLDMError, ParameterError
from brainldm.evaluate.decoded import attribute_accuracy, caption_scores, depth_scores
from brainldm.evaluate.paired import describe_changes, format_changes, paired_differences
from brainldm.features.captions import BlipCaptionModel, BlipGeneration, WorldCaptionModel, caption_model
from brainldm.features.depth import CONDITIONING_CONVENTION, DPTDepthModel, WorldDepthModel, convert_depth, depth_generator, true_depth
from brainldm.features.layers import feature_net_token, layer_slices, pooled_layers
from brainldm.features.stimulus import resize_images
from brainldm.figures.charts import paper_beside
from brainldm.figures.reference import table1, table1_by_subject
from brainldm.fit.ridge import correlation_score
from brainldm.generate import extensions
from brainldm.generate.optimise import feature_loss
from brainldm.generate.structural import CNN_LAYERS, optimise_latents
from brainldm.models.ldm import LatentDiffusion, SamplerSettings, images_to_tensor, prepare_depth
from brainldm.models.loading import FeatureNet, LazyExtras, ModelSet
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
    expected = tiny_world.extras["captioner"].generate(images_to_tensor(images))
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


def test_blip_generation_settings_are_one_value_in_the_cache_token(images):
    from transformers import BlipImageProcessor, BlipProcessor

    from brainldm.testing.fixtures import TINY, bert_tokenizer, tiny_blip

    processor = BlipProcessor(image_processor=BlipImageProcessor(size={"height": TINY, "width": TINY}),
                              tokenizer=bert_tokenizer())
    model = tiny_blip().eval()
    authors = BlipCaptionModel(model, processor)
    assert authors.generation == {"num_beams": 3, "min_length": 5, "max_length": 20, "repetition_penalty": 1.5}
    assert authors.prompt == "a picture of "
    greedy = BlipCaptionModel(model, processor, BlipGeneration(num_beams=1, prompt="a photo of "))
    assert greedy.generation["num_beams"] == 1 and greedy.prompt == "a photo of "
    assert greedy.cache_token != authors.cache_token


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
    full = pooled_layers(net, pixels, CNN_LAYERS)
    pooled = pooled_layers(net, pixels, CNN_LAYERS, pool=2)
    channels = full["early"].shape[1] // 32 ** 2
    assert pooled["early"].shape == (2, channels * 4) and pooled["late"].shape == full["late"].shape
    torch.testing.assert_close(pooled["early"][:, 0], full["early"].reshape(2, channels, 32, 32)[:, 0, :16, :16]
                               .mean((1, 2)))


def test_structure_loss_is_the_weighted_normalised_error():
    targets = {"a": torch.tensor([[1.0, 1.0]]), "b": torch.tensor([[2.0, 0.0]])}
    features = {"a": torch.tensor([[1.0, 0.0]]), "b": torch.tensor([[0.0, 0.0]])}
    torch.testing.assert_close(feature_loss(features, targets, {"a": 2.0, "b": 1.0}), torch.tensor([2 * 0.5 + 1.0]))
    torch.testing.assert_close(feature_loss(features, targets, {"a": 1.0, "b": 0.0}), torch.tensor([0.5]))
    torch.testing.assert_close(feature_loss(features, targets), torch.tensor([0.5 + 1.0]))  # default weights 1


def test_optimise_latents_lowers_the_loss_and_does_not_depend_on_the_batch(tiny_world):
    ldm, net = tiny_world.ldm, tiny_world.feature_nets["cnn"]
    generator = torch.Generator().manual_seed(1)
    z_true = torch.randn(2, 4, 8, 8, generator=generator)
    with torch.no_grad():
        targets = pooled_layers(net, ldm.vae.decode(z_true / ldm.vae.config.scaling_factor).sample.clamp(-1, 1),
                                CNN_LAYERS, pool=4)
    z0 = torch.randn(2, 4, 8, 8, generator=generator)
    z, loss, seconds = optimise_latents(ldm, net, z0, targets, pool=4, iterations=4, lr=0.1)
    assert loss.shape == (5, 2) and seconds > 0
    assert (loss[-1] < loss[0]).all()
    # each image's loss depends on its own latent only: optimised alone, an image ends where it did in the batch
    z_one = torch.cat([optimise_latents(ldm, net, z0[i:i + 1], {k: v[i:i + 1] for k, v in targets.items()}, pool=4,
                                        iterations=4, lr=0.1)[0] for i in range(2)])
    torch.testing.assert_close(z_one, z, atol=1e-4, rtol=1e-4)
    unchanged, _, _ = optimise_latents(ldm, net, z0, targets, pool=4, iterations=0)
    torch.testing.assert_close(unchanged, z0)
    assert not any(p.grad is not None for p in ldm.vae.parameters())
    with pytest.raises(BrainLDMError, match="layer weights"):
        optimise_latents(ldm, net, z0, targets, weights={"fc8": 1.0})


def test_pooled_layers_lay_vit_tokens_on_their_grid_and_name_the_weights(tiny_world):
    from brainldm.features.layers import _as_map

    tokens = torch.arange(2 * 5 * 3, dtype=torch.float32).reshape(2, 5, 3)  # CLS + 2 x 2 patches, 3 dims
    grid = _as_map(tokens)
    assert grid.shape == (2, 3, 2, 2)
    for k in range(4):  # patch k (token k + 1) sits at row k // 2, column k % 2
        np.testing.assert_array_equal(grid[:, :, k // 2, k % 2], tokens[:, k + 1])
    assert _as_map(torch.zeros(2, 7)) is None
    net = tiny_world.feature_nets["cnn"]
    slices = layer_slices(net, CNN_LAYERS, pool=2)
    with torch.no_grad():
        pooled = pooled_layers(net, torch.zeros(1, 3, 64, 64), CNN_LAYERS, pool=2)
    assert [s.stop - s.start for s in slices.values()] == [pooled[layer].shape[1] for layer in CNN_LAYERS]
    assert slices["middle"].start == slices["early"].stop
    token = feature_net_token(net)
    assert token == feature_net_token(net)
    other = FeatureNet("scaled", lambda x: {k: 2 * v for k, v in net.forward(x).items()}, net.layers, net.input_size)
    assert feature_net_token(other) != token
    with pytest.raises(BrainLDMError, match="no layer 'fc8'"):
        pooled_layers(net, torch.zeros(1, 3, 64, 64), ("fc8",))


def test_decoding_summary_reads_each_decoder(rng):
    from brainldm.fit.decoding import Decoded

    r = np.array([0.5, -0.1, 0.2, 0.4], np.float32)
    decoded = Decoded("caption", "early", np.arange(3), None, None, r, np.ones(4), n_voxels=12)
    table = extensions.decoding_summary({"caption": decoded}).set_index("feature")
    assert table.loc["caption", "dimensions"] == 4 and table.loc["caption", "voxels"] == 12
    assert table.loc["caption", "mean r"] == pytest.approx(0.25) and table.loc["caption", "r > 0"] == 0.75


def test_plot_losses_draws_the_mean_over_images_and_the_reference():
    from brainldm.generate.optimise import plot_losses

    ax = plot_losses({"X_g": np.array([[2.0, 4.0], [1.0, 3.0]])}, reference={"seen": 1.5})
    lines = ax.get_lines()
    np.testing.assert_allclose(lines[0].get_ydata(), [3.0, 2.0])
    np.testing.assert_allclose(lines[1].get_ydata(), [1.5, 1.5])


# --- settings, lazy extras, Table 1 -----------------------------------------------------------------

def test_settings_follow_the_dataset_and_reject_unknown_names():
    world = extensions.extension_settings("world", iterations=3, lr=None)
    assert world.iterations == 3 and world.lr == extensions.EXTENSION_DEFAULTS["world"].lr
    assert world.sampler.n_samples == 1 and extensions.extension_settings("nsd").sampler.n_samples == 5
    assert world.roi == ("early", "ventral", "midventral", "midlateral", "lateral", "parietal")
    with pytest.raises(BrainLDMError, match="unknown extension settings"):
        extensions.extension_settings("world", iteration=3)


def test_extension_settings_are_checked_once_and_carry_the_sampler():
    settings = extensions.extension_settings("world", {"num_inference_steps": 4}, seed=3, roi=["early"], n_images=0)
    assert settings.sampler == extensions.EXTENSION_DEFAULTS["world"].sampler.replace(num_inference_steps=4, seed=3)
    assert settings.roi == ("early",) and settings.keep == slice(None)  # a list becomes a tuple; 0: every image
    assert extensions.extension_settings("world").keep == slice(50)
    assert str(settings).splitlines()[1].startswith("sampler: strength=0.8, guidance_scale=5.0, num_inference_steps=4")
    assert extensions.extension_settings("nsd").sampler == SamplerSettings()  # the report's: Takagi's sampler
    with pytest.raises(ParameterError, match="iterations"):
        extensions.extension_settings("world", iterations=-1)
    with pytest.raises(ParameterError, match="layer_weights"):
        extensions.extension_settings("world", layer_weights={"early": 0.0, "middle": 0.0, "late": 0.0})
    with pytest.raises(BrainLDMError, match="fc8"):
        extensions.extension_settings("world", layer_weights={"fc8": 1.0})
    with pytest.raises(ParameterError, match="baseline"):
        extensions.extension_settings("nsd", baseline_samples=2)  # fewer than the 5 samples drawn
    with pytest.raises(ParameterError, match="num_inference_steps"):
        extensions.extension_settings("world", {"num_inference_steps": 0})
    with pytest.raises(ParameterError, match="dataset"):
        extensions.extension_settings("coco")


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
    diff = paired_differences(table).set_index(["subject", "method", "metric"])
    row = diff.loc[("mean", "+T", "CLIP early")]
    assert row["change"] == pytest.approx(0.1) and row["ci_low"] == pytest.approx(0.1)
    assert row["ci_high"] == pytest.approx(0.1) and row["excludes_zero"]
    assert diff.loc[("subj02", "+T+G", "CNN late"), "change"] == pytest.approx(-0.1)
    assert diff.loc[("mean", "+T+G", "CNN late"), "change"] == pytest.approx(0.05)
    assert row["value"] == pytest.approx(row["baseline"] + 0.1)
    assert row["improved"] == 1.0 and row["n"] == 20
    text = format_changes(paired_differences(table))  # the mean over subjects by default
    assert text.loc["CLIP early", "+T"] == "+0.100 [+0.100, +0.100]*"
    assert list(text.columns) == ["+T", "+T+G"] and list(text.index) == ["CLIP early", "CNN late"]
    lines = describe_changes(paired_differences(table), ["CNN late"], subject="subj02").splitlines()
    assert lines[0].startswith("+T raised CNN late: +0.100") and lines[1].startswith("+T+G lowered CNN late: -0.100")


def test_paired_differences_without_subjects_and_the_comparison_object():
    table = _table({"+T": {"subj01": 0.1, "subj02": 0.1}, "+T+G": {"subj01": 0.3, "subj02": 0.3}})
    one = table[table["subject"] == "subj01"].drop(columns="subject")
    diff = paired_differences(one, baseline="+T").set_index(["method", "metric"])
    assert "subject" not in diff.columns and list(diff.index.get_level_values("method").unique()) == ["baseline", "+T+G"]
    assert diff.loc[("+T+G", "CNN late"), "change"] == pytest.approx(0.2)
    with pytest.raises(BrainLDMError, match="'X'"):
        paired_differences(one, baseline="X")
    subj = table[table["subject"] == "subj01"]
    compared = extensions.MethodComparison("subj01", ("baseline", "+T", "+T+G"), subj, paired_differences(subj))
    later = compared.against("+T").set_index("method")
    assert list(later.index.unique()) == ["+T+G"] and later["change"].to_numpy() == pytest.approx(0.2)
    assert compared.means.loc["+T+G", "CLIP early"] - compared.means.loc["baseline", "CLIP early"] == pytest.approx(0.3)
    paper = compared.paper_rows(table1_by_subject())
    assert list(paper.index) == ["baseline", "+T", "+T+G"] and paper.loc["baseline", "CLIP early"] == 0.795
    assert compared.paper_rows(table1_by_subject().drop(index="subj01", level=0)).empty
    assert "+0.200" in compared.changes_text("+T") and "+0.300" in compared.changes_text()


def test_table1_summary_and_comparison_with_the_paper():
    table = _table({"+T": {"subj01": 0.1, "subj02": 0.3}})
    per_subject, across = extensions.table1_summary(table)
    assert list(per_subject.columns) == ["CLIP early", "CNN late"]
    gain = per_subject.loc[("subj02", "+T"), "CLIP early"] - per_subject.loc[("subj02", "baseline"), "CLIP early"]
    assert gain == pytest.approx(0.3)
    means = per_subject.xs("+T", level="method")["CLIP early"]
    assert across.loc["+T", ("CLIP early", "mean")] == pytest.approx(means.mean())
    assert across.loc["+T", ("CLIP early", "sd")] == pytest.approx(means.std(ddof=1))
    paper = table1().rename(index={"CVPR baseline": "baseline"})
    comparison = paper_beside(across.xs("mean", axis=1, level=1), paper)
    assert comparison.loc[("paper", "baseline"), "CLIP early"] == 0.759  # seed 002, CVPR baseline
    assert comparison.loc[("difference", "+T"), "CNN late"] == pytest.approx(
        across.loc["+T", ("CNN late", "mean")] - 0.915)


def test_the_reports_per_subject_table_averages_to_its_mean_row():
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
        late = pooled_layers(net, images_to_tensor(resize_images(images, net.input_size)), CNN_LAYERS, pool=4)["late"]
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
    kwargs = dict(settings=extensions.ExtensionSettings(roi="early"), ridge={"alphas": np.logspace(1, 5, 3), "n_folds": 3})
    in_memory = extensions.decode_extensions(world, tiny_world, **kwargs)
    streamed = extensions.decode_extensions(world, tiny_world, stream_above=0, **kwargs)
    assert list(streamed) == list(extensions.TARGETS)
    for name, d in streamed.items():
        assert isinstance(d.predicted, np.memmap) and isinstance(d.true, np.memmap)
        expected = in_memory[name].predicted
        assert correlation_score(expected, d.predicted).min() >= 0.9999
        np.testing.assert_allclose(d.predicted, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
        np.testing.assert_array_equal(d.true, in_memory[name].true)
        np.testing.assert_allclose(d.r, in_memory[name].r, atol=5e-4)  # r over 10 test images, float32 predictions
        assert d.predicted.shape == d.true.shape == (10, d.r.size)


def test_summarise_changes_names_what_rose_and_fell():
    from brainldm.evaluate.paired import summarise_changes

    table = _table({"+T": {"subj01": 0.1, "subj02": 0.1}, "+T+G": {"subj01": 0.0, "subj02": 0.0}})
    table.loc[(table["method"] == "+T") & (table["metric"] == "CNN late"), "score"] -= 0.2
    diff = paired_differences(table)
    assert summarise_changes(diff, "+T") == "raised CLIP early and lowered CNN late"
    assert summarise_changes(diff, "+T+G") == "left all 2 within their CIs"
    with pytest.raises(BrainLDMError, match="no changes of '\\+D'"):
        summarise_changes(diff, "+D")
