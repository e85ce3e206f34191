"""Features, decoding and reconstruction on tiny random-weight models (the pipeline, not quality)."""

import numpy as np
import pytest
import torch

from brainldm.data.cache import cached_memmaps
from brainldm.fit.decoding import TableSplit, decode, decode_tables, decoding_table, ridge_recipe
from brainldm.errors import BrainLDMError
from brainldm.features.stimulus import resize_images, stimulus_features
from brainldm.generate.reconstruction import reconstruct
from brainldm.models.ldm import LatentDiffusion, SamplerSettings, shifted_scheduler
from brainldm.fit.ridge import GroupRidgeCV, RidgeRecipe, correlation_score


def test_features_have_the_model_shapes_and_are_cached(world, tiny_models):
    ids = world.image_ids("test")[:4]
    z = stimulus_features(world, tiny_models, "z", ids)
    c = stimulus_features(world, tiny_models, "c", ids)
    assert z.shape == (4, int(np.prod(tiny_models.latent_shape())))
    assert c.shape == (4, int(np.prod(tiny_models.c_shape())))
    # repeated and reordered ids give the matching rows
    again = stimulus_features(world, tiny_models, "z", ids[[2, 2, 0]])
    np.testing.assert_array_equal(again, z[[2, 2, 0]])


def test_resize_images_keeps_uint8_and_size():
    images = np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3), dtype=np.uint8)
    assert resize_images(images, 32) is images
    out = resize_images(images, 16)
    assert out.shape == (2, 16, 16, 3) and out.dtype == np.uint8


def test_decode_predicts_every_test_image(world, tiny_models):
    d = decode(world, tiny_models, "c", roi="ventral", ridge={"alphas": np.logspace(1, 5, 3), "n_folds": 3})
    assert d.predicted.shape == d.true.shape == (10, int(np.prod(tiny_models.c_shape())))
    np.testing.assert_array_equal(d.ids, world.image_ids("test"))
    assert d.unflatten(tiny_models).shape == (10,) + tiny_models.c_shape()
    assert d.n_voxels == world.roi_mask("ventral").sum()
    table = decoding_table(world, tiny_models, features=("z",), rois=["early", "ventral"],
                           ridge={"alphas": np.logspace(1, 5, 3), "n_folds": 3})
    assert list(table["roi"]) == ["early", "ventral"] and table["mean_r"].between(-1, 1).all()


def test_reconstruct_shapes_and_reproducibility(world, tiny_models):
    ids = world.image_ids("test")[:2]
    z = torch.from_numpy(stimulus_features(world, tiny_models, "z", ids)).reshape((2,) + tiny_models.latent_shape())
    c = torch.from_numpy(stimulus_features(world, tiny_models, "c", ids)).reshape((2,) + tiny_models.c_shape())
    settings = SamplerSettings(num_inference_steps=2, n_samples=2, seed=1, batch_size=2)
    a = reconstruct(tiny_models.ldm, z, c, tiny_models.uncond, settings)
    size = tiny_models.resolution
    assert a["X_z"].shape == (2, size, size, 3)
    assert a["X_zc"].shape == a["X_c"].shape == (2, 2, size, size, 3)
    assert not np.array_equal(a["X_zc"][:, 0], a["X_zc"][:, 1])  # samples differ
    b = reconstruct(tiny_models.ldm, z, c, tiny_models.uncond, settings, which=("X_z", "X_zc"))
    np.testing.assert_array_equal(a["X_zc"], b["X_zc"])
    assert "X_c" not in b


@pytest.mark.parametrize("bad, message", [
    (dict(strength=0.0), "strength must be in"),
    (dict(strength=1.5), "strength must be in"),
    (dict(n_samples=0), "n_samples must be an integer >= 1"),
    (dict(z_shape=(3, 7, 8, 8)), "decoded z has shape"),
    (dict(c_dim=5), "decoded c has shape"),
])
def test_reconstruct_rejects_bad_input(tiny_models, bad, message):
    z = torch.zeros(bad.pop("z_shape", (3,) + tiny_models.latent_shape()))
    tokens, dim = tiny_models.c_shape()
    c = torch.zeros(3, tokens, bad.pop("c_dim", dim))
    with pytest.raises(BrainLDMError, match=message):
        reconstruct(tiny_models.ldm, z, c, tiny_models.uncond, SamplerSettings(num_inference_steps=2, **bad))


def test_cache_token_follows_the_weights(tiny_models):
    import dataclasses

    same = dataclasses.replace(tiny_models, cache_token="")
    assert same.cache_token == tiny_models.cache_token
    with torch.no_grad():
        tiny_models.ldm.unet.conv_in.bias += 1.0
    try:
        assert dataclasses.replace(tiny_models, cache_token="").cache_token != tiny_models.cache_token
    finally:
        with torch.no_grad():
            tiny_models.ldm.unet.conv_in.bias -= 1.0
    # the scheduler is part of the model: a shifted noise schedule is another cache
    ldm = tiny_models.ldm
    shifted = LatentDiffusion(ldm.vae, ldm.unet, shifted_scheduler(ldm.scheduler, 4.0))
    assert dataclasses.replace(tiny_models, ldm=shifted, cache_token="").cache_token != tiny_models.cache_token


def _per_image_problem(rng, n_images=40, n_test=12, n_voxels=25, widths=(7, 30)):
    """Single trials (3 per image) of a linear map from per-image tables, and their test images."""
    ids = np.repeat(np.arange(n_images) + 100, 3)
    test_ids = np.arange(n_test) + 500
    signal = rng.standard_normal((n_images + n_test, n_voxels)).astype(np.float32)
    X = signal[ids - 100] + 0.5 * rng.standard_normal((ids.size, n_voxels), dtype=np.float32)
    X_test = signal[n_images:] + 0.3 * rng.standard_normal((n_test, n_voxels), dtype=np.float32)
    maps = [rng.standard_normal((n_voxels, width)).astype(np.float32) for width in widths]
    tables = {f"t{k}": signal @ m + rng.standard_normal((len(signal), m.shape[1]), dtype=np.float32)
              for k, m in enumerate(maps)}
    return X, ids, X_test, test_ids, tables


def test_streamed_decoding_equals_the_in_memory_fit_and_reuses_its_cache(rng, tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINLDM_CACHE", str(tmp_path))
    X, ids, X_test, test_ids, tables = _per_image_problem(rng)
    uniq, rows = np.unique(ids, return_inverse=True)

    def write(folder):
        for name, table in tables.items():
            np.save(folder / f"{name}.npy", table)

    stored = cached_memmaps("test_tables", {}, "1", write)
    train = TableSplit(X, ids, {name: table[:len(uniq)] for name, table in stored.items()}, rows)
    test = TableSplit(X_test, test_ids, {name: np.load(table.filename, mmap_mode="r")[len(uniq):]
                                         for name, table in stored.items()}, np.arange(len(test_ids)))
    recipe = RidgeRecipe(alphas=np.logspace(-1, 4, 6), n_folds=3)
    in_memory = decode_tables(train, test, "test_decoding", "1", recipe=recipe)
    streamed = decode_tables(train, test, "test_decoding", "1", recipe=recipe, stream_above=0)

    whole = np.concatenate([tables[name] for name in tables], axis=1)
    reference = GroupRidgeCV(recipe, progress=False).fit(X, whole[:len(uniq)][rows], ids)
    expected = reference.predict(X_test)
    for name, cols in zip(tables, [slice(0, 7), slice(7, 37)]):
        a, b = in_memory[name], streamed[name]
        assert isinstance(b.predicted, np.memmap) and isinstance(b.true, np.memmap)
        assert not isinstance(a.predicted, np.memmap) and not isinstance(a.true, np.memmap)
        np.testing.assert_array_equal(a.predicted, expected[:, cols])  # in memory: fit, then predict
        assert correlation_score(a.predicted, b.predicted).min() >= 0.9999
        np.testing.assert_allclose(b.predicted, a.predicted, rtol=1e-5, atol=1e-5 * np.abs(a.predicted).max())
        np.testing.assert_allclose(b.r, a.r, atol=1e-5)
        np.testing.assert_array_equal(a.alphas, reference.best_alphas_[cols])
        np.testing.assert_array_equal(b.alphas, a.alphas)
        np.testing.assert_array_equal(a.true, b.true)
        np.testing.assert_array_equal(a.true, tables[name][len(uniq):])
        np.testing.assert_allclose(b.r, correlation_score(b.true, np.array(b.predicted)), rtol=1e-12)

    def no_fit(*args, **kwargs):
        raise AssertionError("the cached predictions should have been reused")

    monkeypatch.setattr(GroupRidgeCV, "fit_predict", no_fit)
    again = decode_tables(train, test, "test_decoding", "1", recipe=recipe, stream_above=0)
    np.testing.assert_array_equal(again["t1"].predicted, streamed["t1"].predicted)
    assert cached_memmaps("test_tables", {}, "1", no_fit).keys() == tables.keys()


def test_constant_dimensions_are_left_out_of_the_mean_and_named(rng):
    from brainldm.fit.decoding import Decoded

    r = np.array([0.5, 0.3, np.nan, 0.1])
    d = Decoded(feature="c", roi="ventral", ids=np.arange(3), predicted=np.zeros((3, 4)), true=np.zeros((3, 4)),
                r=r, alphas=np.ones(4), n_voxels=10, constant=np.array([False, False, True, False]))
    assert d.mean_r() == pytest.approx(0.3)
    assert d.describe() == "mean r 0.300 over 3 of 4 dimensions; 1 constant in training (predicted as their constant)"


def test_ridge_recipe_follows_the_protocol_and_keeps_overrides():
    from brainldm.fit.decoding import AUTHORS_ALPHAS
    from brainldm.fit.protocol import protocol_for
    from brainldm.fit.ridge import DEFAULT_ALPHAS

    authors = ridge_recipe(protocol_for("authors", "nsd"))
    assert authors == RidgeRecipe(alphas=AUTHORS_ALPHAS["z_c"], cv="contiguous", fit_intercept=False)
    assert ridge_recipe(protocol_for("authors", "nsd"), "extensions").alphas == tuple(AUTHORS_ALPHAS["extensions"])
    ours = ridge_recipe(protocol_for("brainldm", "world"), n_folds=3, train_on=None)
    assert ours.n_folds == 3 and ours.train_on == "trials" and ours.alphas == tuple(DEFAULT_ALPHAS)
    assert ours.cv == "grouped" and ours.fit_intercept


def test_reconstruction_panels_are_the_rows_of_a_figure():
    from brainldm.generate.reconstruction import Reconstruction

    x_z = np.arange(3 * 2 * 2 * 3, dtype=np.uint8).reshape(3, 2, 2, 3)
    x_zc = np.stack([x_z, x_z + 1], axis=1)
    recon = Reconstruction(X_z=x_z, X_c=x_zc + 2, X_zc=x_zc)
    panels = recon.panels(2)
    assert list(panels) == ["X_z", "X_c", "X_zc #1", "X_zc #2"]
    assert all(images.shape == (2, 2, 2, 3) for images in panels.values())
    np.testing.assert_array_equal(panels["X_c"], x_z[:2] + 2)
    np.testing.assert_array_equal(panels["X_zc #2"], x_z[:2] + 1)
    assert list(Reconstruction(X_zc=x_zc).panels()) == ["X_zc #1", "X_zc #2"]


def test_subject_reconstructions_reconstruct_each_subject_as_brain_reconstructions_does(world, tiny_models):
    from brainldm.data.datasets import load_dataset
    from brainldm.generate.reconstruction import SubjectReconstructions, brain_reconstructions

    other = load_dataset("world", subject="subj02", n_train=40, n_test=10)
    settings = SamplerSettings(num_inference_steps=2, n_samples=1, batch_size=8)
    recons = SubjectReconstructions([world, other], tiny_models, settings, n_images=3)
    assert recons.subjects == ["subj01", "subj02"]
    yielded = list(recons)
    assert [name for name, _, _ in yielded] == ["subj01", "subj02"]
    ids, direct, _ = brain_reconstructions(other, tiny_models, settings, n_images=3)
    name, seen, recon = yielded[1]
    np.testing.assert_array_equal(seen, other.images(ids))
    for key in ("X_z", "X_c", "X_zc"):
        np.testing.assert_array_equal(recon[key], direct[key])
    panels = recons.panels(2)
    assert list(panels) == ["seen", "subj01 X_zc", "subj02 X_zc"]
    np.testing.assert_array_equal(panels["seen"], world.images(ids[:2]))  # the test images are shared
    np.testing.assert_array_equal(panels["subj02 X_zc"], direct["X_zc"][:2, 0])
    assert not np.array_equal(panels["subj01 X_zc"], panels["subj02 X_zc"])  # each subject's own brain
    assert recons.panels(2, key="X_z")["subj02 X_z"].shape == direct["X_z"][:2].shape
    with pytest.raises(BrainLDMError, match="at least one"):
        SubjectReconstructions([], tiny_models)
