"""LDM-internal features: img2img latents, the denoising trajectory and U-Net activations."""

import numpy as np
import pytest
import torch

from brainldm.errors import BrainLDMError
from brainldm.models.ldm import SAMPLER_DEFAULTS, SamplerSettings, sampler_settings
from brainldm.features.unet import denoising_features, ldm_features, stage_steps, unet_layers


@pytest.fixture(scope="module")
def inputs(ldm):
    images = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    return ldm.encode(images), torch.randn(5, 4, 12, generator=torch.Generator().manual_seed(1))


def test_layer_names_and_stages_come_from_the_config(ldm):
    n = len(ldm.unet.config.down_block_types)
    names = unet_layers(ldm.unet)
    assert names[:n] == tuple(f"down{i + 1}" for i in range(n)) and names[n] == "mid" and len(names) == 2 * n + 1
    assert stage_steps(8) == {"early": 0, "middle": 3, "late": 7}
    assert stage_steps(1) == {"early": 0, "middle": 0, "late": 0}


def test_trajectory_ends_at_z_c_and_matches_plain_img2img(ldm, inputs):
    z, c = inputs
    settings = SamplerSettings(strength=0.6, guidance_scale=1.0, num_inference_steps=5, seed=3, batch_size=2)
    out = denoising_features(ldm, z, c, None, settings, layers="all", steps="all", pool=2)
    n_steps = int(5 * 0.6)
    assert out["trajectory"].shape == (5, n_steps) + tuple(z.shape[1:])
    np.testing.assert_array_equal(out["trajectory"][:, -1], out["z_c"])
    assert (np.diff(out["timesteps"]) < 0).all() and out["timesteps"].size == n_steps
    # the same noise as img2img with the documented seed of each batch
    plain = [ldm.img2img(z[i:i + 2], c[i:i + 2], settings, generator=torch.Generator().manual_seed(3 * 1_000_003 + i))
             for i in range(0, 5, 2)]
    np.testing.assert_allclose(out["z_c"], torch.cat(plain).numpy(), atol=1e-5)
    # every layer at every step, pooled to at most 2 x 2
    for layer in unet_layers(ldm.unet):
        for step in range(n_steps):
            act = out[f"unet/{layer}/{step}"]
            assert act.shape[0] == 5 and act.shape[2] <= 2 and act.shape[3] <= 2
    assert not ldm.unet._forward_hooks and not ldm.unet._forward_pre_hooks
    assert all(not block._forward_hooks for block in ldm.unet.down_blocks)


def test_guided_runs_keep_the_conditional_half(ldm, inputs):
    """At the first step both runs feed the U-Net the same noisy latents: the conditional
    half of the guided batch is exactly the unguided activation."""
    z, c = inputs
    kwargs = dict(layers=["mid", "up1"], steps=[0])
    settings = SamplerSettings(strength=0.8, num_inference_steps=5, seed=0, guidance_scale=1.0)
    plain = denoising_features(ldm, z, c, None, settings, **kwargs)
    guided = denoising_features(ldm, z, c, torch.zeros(1, 4, 12), settings.replace(guidance_scale=4.0), **kwargs)
    for key in ("unet/mid/0", "unet/up1/0"):
        assert guided[key].shape == plain[key].shape
        np.testing.assert_allclose(guided[key], plain[key], atol=1e-5)
    assert "unet/mid/1" not in guided and "unet/down1/0" not in guided
    assert not np.allclose(guided["z_c"], plain["z_c"])


def test_bad_layers_and_steps_are_named(ldm, inputs):
    z, c = inputs
    with pytest.raises(BrainLDMError, match="U-Net layer"):
        denoising_features(ldm, z, c, None, SamplerSettings(guidance_scale=1.0, num_inference_steps=4),
                           layers=["bottleneck"])
    with pytest.raises(BrainLDMError, match="outside"):
        denoising_features(ldm, z, c, None, SamplerSettings(guidance_scale=1.0, num_inference_steps=4, strength=0.5),
                           layers="all", steps=[5])
    with pytest.raises(BrainLDMError, match="runs no DDIM step"):
        denoising_features(ldm, z, c, None, SamplerSettings(guidance_scale=1.0, num_inference_steps=4, strength=0.1))


def test_world_features_are_cached_and_follow_the_ids(world):
    from brainldm.models.loading import load_models

    models = load_models("world")
    ids = world.image_ids("test")[:6]
    settings = sampler_settings("world", "encoding", num_inference_steps=2, strength=1.0, batch_size=4)
    first = ldm_features(world, models, ids, settings, layers=["mid"])
    again = ldm_features(world, models, ids[::-1], settings, layers=["mid"])
    np.testing.assert_array_equal(again.z_c, first.z_c[::-1])
    assert first.z_c.shape == (6, int(np.prod(models.latent_shape())))
    assert first.trajectory.shape[:2] == (6, 2) and first.layers == ("mid",)
    assert first.describe().startswith(f"2 denoising steps at timesteps {first.timesteps.tolist()}")
    assert first.activation("mid", "late").shape[0] == 6
    assert first.settings["guidance_scale"] == SAMPLER_DEFAULTS["encoding"]["world"].guidance_scale
    with pytest.raises(BrainLDMError, match="no activations"):
        first.activation("up1", "early")


# --- the encoding analyses of chapters 9-12 on these features --------------------------------------------------
@pytest.fixture(scope="module")
def encoding_settings():
    return sampler_settings("world", "encoding", num_inference_steps=4, strength=0.5, batch_size=25)


def test_fit_ldm_encoders_names_every_feature(world, tiny_models, encoding_settings):
    from brainldm.fit.ldm_encoding import fit_ldm_encoders, stream_rois

    study = fit_ldm_encoders(world, tiny_models, ("z", "c", "z_c", "z+c", "steps", "layers"), encoding_settings)
    run = study.ldm
    assert run.n_steps == 2 and run.layers == unet_layers(tiny_models.ldm.unet)
    layers = [f"{layer} {stage}" for stage in ("early", "middle", "late") for layer in run.layers]
    assert list(study.results) == ["z", "c", "z_c", "z+c", "step 1", "step 2"] + layers
    np.testing.assert_array_equal(study.results["z+c"].kernel_weights.shape, (2, world.n_voxels))
    assert study.rois == stream_rois(world) and study.rois[0] == "early"
    summary = study.summary()
    assert list(summary.index) == list(study.results) and summary["significant voxels"].between(0, 1).all()
    gain = study.r_maps(["z_c"], minus="z")["z_c"]
    np.testing.assert_allclose(gain, study.results["z_c"].r - study.results["z"].r)
    np.testing.assert_array_equal(study.predicted(["z", "c"]),
                                  study.results["z"].significant | study.results["c"].significant)
    assert "40 training and 10 test images" in study.describe()
    with pytest.raises(BrainLDMError, match="unknown LDM feature"):
        fit_ldm_encoders(world, tiny_models, ("z", "z_c_0.5"))


def test_latent_encoding_summaries(world, tiny_models, encoding_settings):
    from brainldm.fit.ldm_encoding import latent_encoding

    enc = latent_encoding(world, tiny_models, encoding_settings, n_boot=20)
    rois = enc.study.rois
    assert list(enc.means().columns) == ["z", "c", "z_c"] and list(enc.means().index) == rois
    assert list(enc.contrast["roi"]) == rois + ["V1", "V2", "V3"]  # every stream, then the early areas
    assert set(enc.contrast["verdict"]) <= {"z > c", "c > z", "no difference"}
    assert set(enc.unique["feature"]) == {"unique z", "unique c", "shared"}
    results = enc.study.results
    np.testing.assert_allclose(enc.partition["unique z"], results["z+c"].r2 - results["c"].r2)
    mask = world.roi_mask("early")
    assert enc.means().loc["early", "z"] == pytest.approx(np.nan_to_num(results["z"].r)[mask].mean())
    assert enc.map_similarity().between(-1, 1).all()


def test_noise_level_and_timestep_gains(world, tiny_models, encoding_settings):
    from brainldm.fit.ldm_encoding import noise_level_gains, timestep_gains

    gains = noise_level_gains(world, tiny_models, [0.5, 1.0], encoding_settings, n_boot=20)
    assert gains.names == ["z_c 0.5", "z_c 1.0"] and gains.key == "strength"
    assert list(gains.runs["steps"]) == [2, 4]
    means = gains.means()
    assert list(means.columns) == [0.5, 1.0] and list(means.index) == gains.study.rois
    maps = gains.gains()
    assert list(maps) == ["strength 0.5", "strength 1.0"]
    mask = world.roi_mask("ventral")
    assert means.loc["ventral", 1.0] == pytest.approx(np.nan_to_num(maps["strength 1.0"])[mask].mean())
    first, counts = gains.first_above(0.05)
    above = np.stack(list(maps.values())) > 0.05
    assert ((first >= 0) == (above.any(0) & gains.predicted)).all()
    assert counts.sum() == gains.predicted.sum() and list(counts.index) == ["from 0.5", "from 1.0", "never"]
    assert set(gains.verdicts().to_numpy().ravel()) <= {"z_c 0.5 > z", "z > z_c 0.5", "z_c 1.0 > z", "z > z_c 1.0",
                                                        "no difference"}
    steps = timestep_gains(world, tiny_models, encoding_settings, n_boot=20)
    assert steps.labels == [1, 2] and steps.names == ["step 1", "step 2"]
    assert {"c", "z_c"} <= set(steps.study.results)  # for the viewer
    assert list(steps.stage_gains()) == ["early (step 1) − z", "middle (step 1) − z", "late (step 2) − z"]
    np.testing.assert_allclose(steps.study.results["step 2"].r, steps.study.results["z_c"].r)  # the last step is z_c
    with pytest.raises(BrainLDMError, match="stage_gains needs"):
        gains.stage_gains()


def test_layer_scores_winners_and_depths(world, tiny_models, encoding_settings):
    from brainldm.fit.ldm_encoding import layer_scores

    # fdr 0.99: nearly every voxel counts as predicted, so that the tiny random models have winners to book-keep
    scores = layer_scores(world, tiny_models, encoding_settings, fdr=0.99, n_boot=20)
    layers = scores.layers
    assert set(scores.table["stage"]) == {"early", "middle", "late"} and set(scores.table["layer"]) == set(layers)
    assert list(scores.best_by_roi().columns) == ["early", "middle", "late"]
    depth = scores.depth
    assert depth["mid"] == max(depth.values()) and depth["down1"] == 0
    assert set(scores.outer_and_bottleneck().index.get_level_values("layer")) <= {l for l in layers
                                                                                 if depth[l] in (0, depth["mid"])}
    shares = scores.shares()
    for stage, w in scores.winners.items():
        assert shares[stage].sum() == pytest.approx((w >= 0).mean())
    measures = scores.winner_depths()
    for stage, w in scores.winners.items():  # defined exactly where a layer wins; the flags are 0 or 1
        np.testing.assert_array_equal(np.isfinite(measures[f"{stage}: mean depth"]), w >= 0)
        assert set(np.unique(measures[f"{stage}: bottleneck"][w >= 0])) <= {0.0, 1.0}
    assert all((w >= 0).any() for w in scores.winners.values())
    assert list(scores.describe()["depth"]) == [depth[l] for l in layers]
