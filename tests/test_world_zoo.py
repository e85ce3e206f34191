"""The world model zoo: shipped weights load offline, training lowers every loss, metrics are right."""

import numpy as np
import pytest
import torch

from brainldm.data.datasets.world.scenes import render_scenes
from brainldm.errors import BrainLDMError, ParameterError
from brainldm.evaluate.metrics import psnr, two_way_identification
from brainldm.models.ldm import SamplerSettings, images_to_tensor, prepare_depth, shifted_scheduler
from brainldm.features.depth import depth_correlation
from brainldm.models.world import MODEL_NAMES, load_world_model, model_card, weights_dir
from brainldm.training import train as T
from brainldm.training.metrics import accuracy_per_attribute, held_out_ids, inception_accuracy, top1_retrieval
from brainldm.models.world.nets import ATTRIBUTES, INCEPTION_ATTRIBUTES, MODEL_CLASSES, WorldInception, build, caption_from_attributes, scene_attributes


@pytest.fixture(scope="module")
def scenes():
    return render_scenes(np.arange(12), seed=3)


@pytest.fixture(scope="module")
def text_encoder():
    return load_world_model("text_encoder")


# --- the shipped models -------------------------------------------------------------------

@pytest.mark.parametrize("name", [n for n in MODEL_NAMES if n != "text_encoder"])
def test_every_shipped_model_loads_offline(name):
    model = load_world_model(name)
    assert type(model) is MODEL_CLASSES[name]
    if name != "scheduler":
        assert not model.training and next(model.parameters()).dtype == torch.float32


def test_shipped_weights_are_small_and_documented():
    files = [f for f in weights_dir().rglob("*") if f.is_file()]
    assert sum(f.stat().st_size for f in files) < 40e6
    card = model_card()
    assert set(card["models"]) == set(T.ORDER)
    assert card["pool"]["n_leaked_test_images"] > 0
    assert "quality" in card


def test_the_inception_analogue_is_shipped_trained_and_documented():
    """A second classifier of its own (multi-branch, batch norm) on held-out images: place and category."""
    model = load_world_model("inception")
    assert isinstance(model, WorldInception) and not model.training
    assert not any(m.training for m in model.modules())  # batch norm reads its running statistics
    scenes = render_scenes(held_out_ids(200), seed=0)
    accuracy = inception_accuracy(model, scenes.images, scene_attributes(scenes))
    assert set(accuracy) == {"place", "category", "mean"}
    assert accuracy["place"] >= 0.9 and accuracy["category"] >= 0.9
    entry = model_card()["models"]["inception"]
    assert entry["params"] == sum(p.numel() for p in model.parameters())
    assert entry["loss_last"] < entry["loss_first"]


def test_world_inception_column_reads_its_own_network():
    """The world's Inception column is the Inception analogue's pooled features, not the CNN's late layer."""
    from brainldm.models.loading import world_model_set
    from brainldm.models.world import load_world_models

    world = load_world_models()
    assert isinstance(world.inception, WorldInception)
    models = world_model_set(world)
    net = models.feature_nets["inception"]
    assert net.layers == ("late",) and "CNN" not in net.name
    images = render_scenes(held_out_ids(6), seed=0).images
    features = net(images)["late"]
    with torch.no_grad():
        expected = world.inception.forward_layers(images_to_tensor(images))["late"].numpy()
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-5)
    cnn_late = models.feature_nets["cnn"](images, ["late"])["late"]
    assert features.shape != cnn_late.shape or not np.allclose(features, cnn_late)
    # image-to-image similarity differs between the two networks (two metrics, not one twice)
    def similarity(x):
        return np.corrcoef(x)[np.triu_indices(len(x), 1)]
    assert np.corrcoef(similarity(features), similarity(cnn_late))[0, 1] < 0.999


def test_unknown_or_missing_models_raise_a_clear_error(tmp_path):
    with pytest.raises(BrainLDMError, match="expected one of"):
        load_world_model("clip")
    with pytest.raises(BrainLDMError, match="train-world"):
        load_world_model("vae", tmp_path)


def test_text_encoder_averages_token_embeddings_over_captions(text_encoder):
    caps = ["A red face at the beach.", "A beach scene with a red face."]
    c = text_encoder.encode_captions([caps, caps[:1] * 2])
    tokens = text_encoder.encode_tokens(caps)
    assert c.shape == (2, text_encoder.max_length, 384)
    torch.testing.assert_close(c[0], tokens.mean(0))
    torch.testing.assert_close(c[1], tokens[0])
    sentences = text_encoder.encode_sentences(caps)
    torch.testing.assert_close(sentences.norm(dim=1), torch.ones(2))
    assert text_encoder.unconditional(3).shape == (3, text_encoder.max_length, 384)


# --- a few training steps of each model lower its loss ------------------------------------

def _lowered(losses, k=3):
    return np.mean(losses[-k:]) < np.mean(losses[:k])


def _gen():
    return torch.Generator().manual_seed(0)


def test_vae_training_lowers_the_loss(scenes):
    torch.manual_seed(0)
    losses = T.train_vae(build("vae", tiny=True), images_to_tensor(scenes.images), T.Schedule(12, 12, 5e-3, _gen()))
    assert _lowered(losses)


def test_vae_decoder_stage_keeps_the_encoder_and_its_latents(scenes):
    torch.manual_seed(0)
    vae = build("vae", tiny=True)
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    losses = T.train_vae(vae, scenes.images, T.Schedule(12, 12, 5e-3, _gen()), decoder_only=True)
    assert _lowered(losses)
    after = vae.state_dict()
    changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"decoder", "post_quant_conv"}
    assert [stage[3] for stage in T.STEPS["vae"]] == [None, 30000, 60000]  # the decoder's stages: fresh images


def test_unet_training_lowers_the_loss(scenes):
    torch.manual_seed(0)
    unet = build("unet", tiny=True, cross_attention_dim=8)
    latents = torch.randn(12, 4, 8, 8, generator=_gen())
    depth = prepare_depth(scenes.depth, (8, 8))
    losses = T.train_unet(unet, build("scheduler"), (latents, 0.01 * torch.ones_like(latents)),
                          (torch.randn(12, 5, 8), torch.zeros(1, 5, 8)), T.Schedule(30, 12, 3e-3, _gen()),
                          depth=depth)
    assert _lowered(losses, 5)


def test_min_snr_weighting_lowers_the_loss_and_weighs_noisy_steps_fully(scenes):
    torch.manual_seed(0)
    unet, scheduler = build("unet", tiny=True, cross_attention_dim=8), build("scheduler")
    latents = torch.randn(12, 4, 8, 8, generator=_gen())
    losses = T.train_unet(unet, scheduler, (latents, 0.01 * torch.ones_like(latents)),
                          (torch.randn(12, 5, 8), torch.zeros(1, 5, 8)), T.Schedule(30, 12, 3e-3, _gen()),
                          depth=prepare_depth(scenes.depth, (8, 8)), options=T.UNetOptions(snr_gamma=5.0))
    assert _lowered(losses, 5)
    alphas = scheduler.alphas_cumprod
    snr = alphas / (1 - alphas)
    weight = snr.clamp(max=5.0) / snr
    assert weight[0] < 0.01 and weight[-1] == 1.0  # nearly clean steps weigh little, noisy ones fully
    assert all(set(stage[4]) <= set(T.STAGE_OPTIONS) for stages in T.STEPS.values() for stage in stages
               if len(stage) > 4)
    assert set(T.STAGE_OPTIONS) == set(T.UNetOptions.__dataclass_fields__)


def test_a_shifted_noise_schedule_raises_every_log_snr_by_twice_the_log_shift(tmp_path):
    base = build("scheduler")
    shifted = shifted_scheduler(base, 4.0)
    assert type(shifted) is type(base) and shifted.config.clip_sample is False
    gain = torch.logit(shifted.alphas_cumprod.double()) - torch.logit(base.alphas_cumprod.double())
    torch.testing.assert_close(gain, torch.full_like(gain, 2 * np.log(4.0)), rtol=0, atol=1e-3)
    assert (shifted.betas > 0).all() and (shifted.betas < 1).all()
    torch.testing.assert_close(shifted_scheduler(base, 1.0).alphas_cumprod, base.alphas_cumprod)
    with pytest.raises(ParameterError, match="at least 1"):
        shifted_scheduler(base, 0.5)
    # a U-Net stage trains under the saved scheduler, or shifts the unshifted one (never twice)
    shifted.save_pretrained(tmp_path / "scheduler")
    assert torch.equal(T._stage_scheduler(tmp_path, 0).alphas_cumprod, base.alphas_cumprod)
    assert torch.equal(T._stage_scheduler(tmp_path, 3).alphas_cumprod, shifted.alphas_cumprod)
    assert torch.equal(T._stage_scheduler(tmp_path, 3, 4.0).alphas_cumprod, shifted.alphas_cumprod)


def test_the_shipped_scheduler_is_the_recipe_s():
    """Shifted by the last U-Net stage's ``noise_shift`` (the shipped U-Net was trained under it)."""
    shifts = [stage[4].get("noise_shift") for stage in T.STEPS["unet"] if len(stage) > 4]
    shift = next(s for s in reversed(shifts) if s)
    shipped = load_world_model("scheduler")
    torch.testing.assert_close(shipped.alphas_cumprod, shifted_scheduler(build("scheduler"), shift).alphas_cumprod)
    assert model_card()["models"]["unet"]["stages"][-1]["noise_shift"] == shift


def test_deepened_attention_starts_as_the_same_function_saves_and_learns(scenes, tmp_path):
    torch.manual_seed(0)
    unet = build("unet", tiny=True, cross_attention_dim=8)
    x, t, c = torch.randn(3, 5, 8, 8, generator=_gen()), torch.tensor([5, 400, 900]), torch.randn(3, 5, 8)
    with torch.no_grad():
        before = unet(x, t, encoder_hidden_states=c).sample
        T.deepen_attention(unet, 2)
        after = unet(x, t, encoder_hidden_states=c).sample
    assert torch.equal(before, after)
    blocks = [m.transformer_blocks for m in unet.modules() if hasattr(m, "transformer_blocks")]
    assert blocks and all(len(b) == 2 for b in blocks)
    unet.save_pretrained(tmp_path)
    reloaded = type(unet).from_pretrained(tmp_path)
    assert reloaded.config.transformer_layers_per_block == 2
    with torch.no_grad():
        assert torch.equal(reloaded(x, t, encoder_hidden_states=c).sample, before)
    with pytest.raises(ParameterError, match="can be deepened to more"):
        T.deepen_attention(unet, 1)
    # a stage with ``transformer_layers`` deepens first, then trains the new layers too
    unet = build("unet", tiny=True, cross_attention_dim=8)
    latents = torch.randn(12, 4, 8, 8, generator=_gen())
    T.train_unet(unet, build("scheduler"), (latents, 0.01 * torch.ones_like(latents)),
                 (torch.randn(12, 5, 8), torch.zeros(1, 5, 8)), T.Schedule(5, 12, 3e-3, _gen()),
                 depth=prepare_depth(scenes.depth, (8, 8)), options=T.UNetOptions(transformer_layers=2))
    new = unet.down_blocks[1].attentions[0].transformer_blocks[1]
    assert new.attn2.to_out[0].weight.abs().sum() > 0


def test_ema_ends_with_the_moving_average_of_the_weights():
    inputs, targets = torch.randn(40, 3, generator=_gen()), torch.randn(40, 1, generator=_gen())

    def train(ema_decay):
        torch.manual_seed(0)
        model, seen = torch.nn.Linear(3, 1), []

        def loss_fn(index):
            seen.append([p.detach().clone() for p in model.parameters()])
            return (model(inputs[index]) - targets[index]).pow(2).mean()

        T._optimise(model, loss_fn, 40, T.Schedule(20, 8, 1e-1, _gen()), "ema", warmup=1, ema_decay=ema_decay)
        return seen, [p.detach() for p in model.parameters()]

    seen, last = train(None)  # the same trajectory: the average does not steer the steps
    average = seen[0]
    for step, weights in enumerate(seen[1:] + [last]):
        rate = 1 - min(0.9, (1 + step) / (10 + step))
        average = [a + rate * (w - a) for a, w in zip(average, weights)]
    _, ema = train(0.9)
    for expected, got, final in zip(average, ema, last):
        torch.testing.assert_close(got, expected)
        assert not torch.allclose(got, final)


def test_cnn_training_lowers_the_loss(scenes):
    torch.manual_seed(0)
    labels = {k: torch.as_tensor(v, dtype=torch.long) for k, v in scene_attributes(scenes).items()}
    losses = T.train_cnn(build("cnn", tiny=True), images_to_tensor(scenes.images), labels,
                         T.Schedule(12, 12, 5e-3, _gen()))
    assert _lowered(losses)


def test_inception_builds_with_its_layers(scenes):
    torch.manual_seed(0)
    full = build("inception")
    assert 100_000 < sum(p.numel() for p in full.parameters()) < 1_000_000
    pixels = images_to_tensor(scenes.images[:3])
    layers = full.eval().forward_layers(pixels)
    assert layers["early"].shape == (3, 64, 16, 16) and layers["middle"].shape == (3, 128, 16, 16)
    assert layers["late"].shape == (3, 256)
    logits = full(pixels)
    assert {k: v.shape[1] for k, v in logits.items()} == INCEPTION_ATTRIBUTES
    # every branch of a block contributes its share of the channels
    block = full.blocks[0]
    widths = [branch(layers["early"]).shape[1] for branch in
              (block.branch1, block.branch3, block.branch5, block.branch_pool)]
    assert widths == [32, 48, 32, 16]
    tiny = build("inception", tiny=True)
    assert tiny.forward_layers(pixels)["late"].shape == (3, 16)


def test_inception_training_lowers_the_loss(scenes):
    torch.manual_seed(0)
    attrs = scene_attributes(scenes)
    labels = {k: torch.as_tensor(attrs[k], dtype=torch.long) for k in INCEPTION_ATTRIBUTES}
    losses = T.train_inception(build("inception", tiny=True), scenes.images, labels, T.Schedule(16, 12, 5e-3, _gen()))
    assert _lowered(losses)


def test_inception_is_last_in_the_training_order():
    """``--resume --models inception`` trains it alone; the other models keep their order."""
    assert T.ORDER[-1] == "inception" and "inception" in T.STEPS
    assert T.ORDER[:-1] == ("vae", "unet", "cnn", "image_encoder", "captioner", "depth_estimator")


def test_image_encoder_training_lowers_the_loss(scenes):
    torch.manual_seed(0)
    sentences = torch.nn.functional.normalize(torch.randn(12, 5, 384, generator=_gen()), dim=-1)
    losses = T.train_image_encoder(build("image_encoder", tiny=True),
                                   images_to_tensor(scenes.images), sentences, T.Schedule(12, 12, 5e-3, _gen()))
    assert _lowered(losses)


@pytest.mark.parametrize("fine_tune", [False, True])
def test_captioner_training_lowers_the_loss(scenes, fine_tune):
    torch.manual_seed(0)
    captioner = build("captioner", tiny=True)
    backbone = {k: v.clone() for k, v in captioner.backbone.state_dict().items()}
    targets = T.captioner_targets(scenes.category, scenes.color, scenes.place, scenes.size, scenes.x)
    losses = T.train_captioner(captioner, images_to_tensor(scenes.images), targets, T.Schedule(12, 12, 5e-3, _gen()),
                               fine_tune=fine_tune)
    assert _lowered(losses)
    kept = all(torch.equal(v, captioner.backbone.state_dict()[k]) for k, v in backbone.items())
    assert kept != fine_tune  # the first stage trains only the heads; a fine-tuning stage, the encoder too


def test_captioner_trains_alike_on_uint8_images_and_on_their_pixels(scenes):
    """A fresh-image stage passes uint8 images (converted 256 at a time); the shared pool passes pixels."""
    targets = T.captioner_targets(scenes.category, scenes.color, scenes.place, scenes.size, scenes.x)
    runs = []
    for images in (scenes.images, images_to_tensor(scenes.images)):
        torch.manual_seed(0)
        runs.append(T.train_captioner(build("captioner", tiny=True), images, targets, T.Schedule(6, 6, 5e-3, _gen())))
    assert runs[0] == runs[1]


def test_fresh_training_images_carry_the_classifiers_and_the_captioners_labels(tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINLDM_DATA", str(tmp_path))
    fresh = T.render_pool(8)
    assert fresh["images"].shape == (8, 64, 64, 3) and fresh["category"].shape == fresh["x"].shape == (8, 3)
    images, labels = T._classifier_data({"images": np.zeros((1, 64, 64, 3), np.uint8)}, 8, 0, ATTRIBUTES)
    scenes = render_scenes(T.POOL_BASE + np.arange(8), seed=0)
    assert np.array_equal(images, scenes.images)
    assert all(np.array_equal(labels[k].numpy(), v) for k, v in scene_attributes(scenes).items())
    targets = T.captioner_targets(fresh["category"], fresh["color"], fresh["place"], fresh["size"], fresh["x"])
    assert targets.keys() == T.captioner_targets(scenes.category, scenes.color, scenes.place, scenes.size,
                                                 scenes.x).keys()
    assert [stage[3] for stage in T.STEPS["captioner"]] == [30000, 100000]  # fresh images


def test_depth_estimator_training_lowers_the_loss(scenes):
    torch.manual_seed(0)
    losses = T.train_depth_estimator(build("depth_estimator", tiny=True),
                                     images_to_tensor(scenes.images), torch.from_numpy(scenes.depth),
                                     T.Schedule(12, 12, 5e-3, _gen()))
    assert _lowered(losses)


def test_train_world_rejects_unknown_models(tmp_path):
    with pytest.raises(BrainLDMError, match="unknown world models"):
        T.train_world_main(["--models", "vae,clip", "--out", str(tmp_path)])


# --- the model parts that are not learned -------------------------------------------------

def test_captions_follow_the_template():
    attrs = {"place": np.array([0]), "size": np.array([2]), "position": np.array([0]),
             "category": np.array([[0, 2, -1]]), "color": np.array([[0, 2, -1]])}
    assert caption_from_attributes(attrs) == ["A large red face at the beach and a blue house."]


def test_captioner_reads_its_own_encoder_layers(scenes):
    captioner = build("captioner", tiny=True)
    pixels = images_to_tensor(scenes.images)
    assert captioner.features(pixels).shape == (12, captioner.in_features)
    assert set(captioner.backbone(pixels)) == {"early", "middle", "late"}
    captions = captioner.generate(pixels)
    assert len(captions) == 12 and all(c.startswith("A ") for c in captions)


def test_attributes_cover_what_the_cnn_predicts(scenes):
    attrs = scene_attributes(scenes)
    for name, k in ATTRIBUTES.items():
        assert attrs[name].min() >= 0 and attrs[name].max() < k


def test_held_out_images_are_outside_the_pool_and_the_subjects():
    from brainldm.data.datasets.world.design import POOL_BASE, SUBJECT_BASE, zoo_pool_ids

    ids = held_out_ids(100)
    assert not np.isin(ids, zoo_pool_ids(6000)).any()
    assert ids.min() > POOL_BASE + 6000 and ids.min() > 8 * SUBJECT_BASE + 10_000


# --- metrics with known answers -----------------------------------------------------------

def test_two_way_identification_known_answers():
    rng = np.random.default_rng(0)
    orig = rng.normal(size=(6, 20))
    for rule in ("authors", "per_sample"):
        assert np.all(two_way_identification(orig, orig, rule) == 1.0)
        assert np.all(two_way_identification(orig, -orig, rule) == 0.0)
    same = np.repeat(rng.normal(size=(1, 1, 20)), 6, axis=0)
    np.testing.assert_allclose(two_way_identification(orig, same, "per_sample"), 0.5)  # ties count one half
    np.testing.assert_allclose(two_way_identification(orig, same), 0.0)  # the authors count strict wins only
    # two samples per image, one perfect and one anti-correlated: 0.5 on average per sample
    gen = np.stack([orig, -orig], axis=1)
    np.testing.assert_allclose(two_way_identification(orig, gen, "per_sample"), 0.5)
    with pytest.raises(ValueError, match="same n and d"):
        two_way_identification(orig, orig[:5])


def test_two_way_identification_matches_the_loop_definition():
    rng = np.random.default_rng(1)
    orig, gen = rng.normal(size=(5, 8)), rng.normal(size=(5, 3, 8))
    expected = np.zeros(5)
    for i in range(5):
        for k in range(3):
            own = np.corrcoef(orig[i], gen[i, k])[0, 1]
            expected[i] += np.mean([own > np.corrcoef(orig[i], gen[j, k])[0, 1]
                                    for j in range(5) if j != i]) / 3
    np.testing.assert_allclose(two_way_identification(orig, gen, "per_sample"), expected)


def _authors_identification(feat_orgs, feat_gens):
    """Takagi & Nishimoto's codes/utils/identification.py (the similarity and accuracy loops), on arrays."""
    n = len(feat_orgs)
    rs_all = [[np.corrcoef(feat_orgs[row], feat_gens[col])[0, 1:] for col in range(n)] for row in range(n)]
    acc_all = []
    for org in range(n):
        r_true = rs_all[org][org]
        acc = [r_true.mean() > rs_all[org][fake].mean() for fake in range(n) if fake != org]
        acc_all.append(sum(acc) / len(acc))
    return np.array(acc_all)


def test_two_way_identification_equals_the_authors_loop():
    rng = np.random.default_rng(2)
    orig = rng.normal(size=(12, 30))
    gen = 0.4 * orig[:, None] + rng.normal(size=(12, 5, 30))  # 5 samples per image, as on NSD
    np.testing.assert_allclose(two_way_identification(orig, gen), _authors_identification(orig, gen), atol=1e-9)


def test_basic_metrics_known_answers():
    a = np.zeros((2, 4, 4, 3), np.uint8)
    np.testing.assert_allclose(psnr(a + 1, a), 20 * np.log10(255))
    assert top1_retrieval(np.eye(4), np.eye(4)) == 1.0
    assert top1_retrieval(np.eye(4), np.eye(4)[[1, 0, 3, 2]]) == 0.0
    depth = np.random.default_rng(0).random((3, 5, 5))
    np.testing.assert_allclose(depth_correlation(2 * depth + 1, depth), 1.0)
    acc = accuracy_per_attribute({"a": np.array([1, 2]), "b": np.array([0, 0])},
                             {"a": np.array([1, 2]), "b": np.array([0, 1])})
    assert acc == {"a": 1.0, "b": 0.5, "mean": 0.75}


def test_model_quality_is_evaluated_once_per_weights(tmp_path, monkeypatch):
    """Chapter 90's evaluation is cached by a digest of the weights: a warm build reads it back."""
    from brainldm.models.world import load_world_models
    from brainldm.training import metrics

    monkeypatch.setenv("BRAINLDM_DATA", str(tmp_path))
    calls = []
    evaluate = metrics.evaluate_world_models
    monkeypatch.setattr(metrics, "evaluate_world_models", lambda *a, **k: calls.append(1) or evaluate(*a, **k))
    models = load_world_models()
    first = metrics.cached_evaluation(models, n_eval=4, settings=SamplerSettings(num_inference_steps=2))
    second = metrics.cached_evaluation(models, n_eval=4, settings=SamplerSettings(num_inference_steps=2))
    assert len(calls) == 1
    assert first[0] == second[0] and first[0]["n_eval"] == 4
    assert set(first[1]) >= {"original", "vae", "text2img", "img2img"}
    quality = first[0]  # the VAE round trip is scored as img2img is: its ceiling, layer by layer
    assert set(quality["vae_identification"]) == set(quality["img2img_identification"])
    assert set(quality["vae_cnn_accuracy"]) == set(quality["cnn_accuracy"])
    np.testing.assert_array_equal(first[1]["img2img"], second[1]["img2img"])
    assert first[1]["img2img"].dtype == np.uint8 and first[1]["img2img"].shape[0] == 4
    metrics.cached_evaluation(models, n_eval=4, settings=SamplerSettings(num_inference_steps=3))  # other settings: computed again
    assert len(calls) == 2
    # the strength series: its row at the evaluation's strength and its VAE row are the evaluation's numbers
    table = metrics.strength_identification(models, [0.5, 0.8], n_eval=4, settings=SamplerSettings(num_inference_steps=2))
    assert list(table.index) == ["VAE round trip", "img2img 0.5", "img2img 0.8"]
    assert table.loc["img2img 0.8", "CNN late"] == pytest.approx(quality["img2img_identification"]["cnn_late"], abs=1e-4)
    assert table.loc["VAE round trip", "image encoder late"] == pytest.approx(
        quality["vae_identification"]["image_encoder_late"], abs=1e-4)
    assert list(table.columns) == ["CNN late", "image encoder late", "CNN: position", "CNN: category", "CNN: color"]
