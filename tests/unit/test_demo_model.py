"""The reelgen-demo model code at a tiny config, on the CPU: tokenizer, save/load through the Wan loader,
determinism, and the training loop (loss goes down, resume continues exactly). About 15 s on 2 shared cores."""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from reelgen.demo.captions import VOCABULARY, canonical_words, caption, parse_caption
from reelgen.demo.evaluate import generate
from reelgen.demo.model import MAX_SEQUENCE_LENGTH, ModelConfig, build_pipeline, build_tokenizer
from reelgen.demo.train import TrainConfig, Trainer
from reelgen.demo.world import sample_spec
from reelgen.engines.wan import load_wan_pipeline
from tests.unit.engine_support import one_cpu_thread  # noqa: F401 - autouse fixture

TINY = ModelConfig(
    text_dim=16,
    text_layers=1,
    text_heads=2,
    vae_base_dim=4,
    vae_dim_mult=(1, 1, 1),
    z_dim=4,
    heads=2,
    head_dim=8,
    ffn_dim=16,
    layers=1,
)


def tiny_train_config(steps: int = 2) -> TrainConfig:
    return TrainConfig(
        model=TINY,
        vae_image_steps=1,
        vae_steps=1,
        vae_batch=1,
        vae_crop=32,
        cache_size=4,
        steps=steps,
        batch=2,
        checkpoint_every=2,
        log_every=1,
        warmup=1,
    )


def test_tokenizer_is_word_level_over_the_vocabulary() -> None:
    tok = build_tokenizer()
    assert len(tok) == len(VOCABULARY) + 3
    text = "A crimson ball rolls up-left, on the grass!"
    ids = tok(text).input_ids
    assert ids[-1] == tok.eos_token_id == 1
    assert tok.convert_ids_to_tokens(ids[:-1]) == ["a", "red", "circle", "moves", "up", "left", "on", "the", "grass"]
    assert tok.convert_ids_to_tokens(ids[:-1]) == canonical_words(text)
    assert tok("a purple cat").input_ids[2] == tok.unk_token_id
    padded = tok("a red star", padding="max_length", max_length=MAX_SEQUENCE_LENGTH, truncation=True)
    assert len(padded.input_ids) == MAX_SEQUENCE_LENGTH and padded.input_ids[-1] == tok.pad_token_id


def test_tokenizer_gives_synonyms_the_canonical_ids_exactly_as_canonical_words_says() -> None:
    tok = build_tokenizer()
    same = ["a red circle moves left", "A crimson ball rolls leftwards.", "the red disc, sliding towards the left"]
    assert len({tuple(tok(t).input_ids[1:-1]) for t in same[:2]}) == 1
    assert tok.convert_ids_to_tokens(tok(same[2]).input_ids[:-1]) == ["the", "red", "circle", "moving", "left"]
    assert tok.convert_ids_to_tokens(tok("a box rises to the upper left").input_ids[:-1]) == [
        "a",
        "square",
        "moves",
        "up",
        "to",
        "the",
        "upper",
        "left",
    ]
    rng = np.random.default_rng(0)
    for _ in range(500):
        text = caption(sample_spec(rng), rng)
        assert tok.convert_ids_to_tokens(tok(text).input_ids[:-1]) == canonical_words(text), text
        assert parse_caption(" ".join(canonical_words(text))) == dataclasses.replace(parse_caption(text), unknown=()), (
            text
        )


def test_pipeline_saves_and_loads_offline_through_the_wan_loader(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pipe = build_pipeline(TINY, seed=0)
    pipe.vae.register_to_config(latents_mean=[0.0] * TINY.z_dim, latents_std=[1.0] * TINY.z_dim)
    pipe.save_pretrained(tmp_path / "pipe")
    loaded = load_wan_pipeline(tmp_path / "pipe", dtype=torch.float32, device="cpu")
    text = "a tiny magenta donut rises to the left in a clear sky, meow"
    assert loaded.tokenizer(text).input_ids == pipe.tokenizer(text).input_ids
    for name in ("transformer", "text_encoder", "vae"):
        before, after = getattr(pipe, name).state_dict(), getattr(loaded, name).state_dict()
        assert before.keys() == after.keys()
        assert all(torch.equal(before[k], after[k]) for k in before), name
    prompt = "a red square moving to the right"
    a = generate(loaded, prompt, seed=7, steps=2)
    b = generate(loaded, prompt, seed=7, steps=2)
    c = generate(loaded, prompt, seed=8, steps=2)
    assert a.shape == (17, 128, 128, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_training_steps_reduce_the_loss_on_a_fixed_batch(tmp_path: Path) -> None:
    trainer = Trainer(tmp_path / "run", tiny_train_config(), progress=lambda _: None)
    trainer.train_vae()
    cache = trainer.build_cache()
    x0 = cache["latents"]
    from reelgen.demo.model import normalize_latents
    from reelgen.demo.train import spec_from_json

    x0 = normalize_latents(trainer.pipe.vae, x0)
    specs = [spec_from_json(s) for s in cache["specs"]]
    params = [*trainer.pipe.transformer.parameters(), *trainer.pipe.text_encoder.parameters()]
    opt = torch.optim.Adam(params, lr=3e-3)
    losses = []
    for _ in range(30):
        loss = trainer.flow_matching_loss(x0, specs, step=0)  # the same batch, captions and noise every time
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


def test_swap_shape_changes_only_the_shape_and_stays_in_the_training_split() -> None:
    from reelgen.demo.train import swap_shape
    from reelgen.demo.world import is_held_out

    rng = np.random.default_rng(3)
    for i in range(200):
        spec = sample_spec(rng, "train")
        swapped = swap_shape(spec, seed=i)
        assert swapped.shape != spec.shape and not is_held_out(swapped)
        assert dataclasses.replace(swapped.primary, shape=spec.shape) == spec.primary
        assert swapped.background == spec.background
        assert swap_shape(spec, seed=i) == swapped
    with pytest.raises(ValueError, match="shape_swap"):
        dataclasses.replace(tiny_train_config(), shape_swap=1.5)
    with pytest.raises(ValueError, match="object_weight"):
        dataclasses.replace(tiny_train_config(), object_weight=-1.0)
    with pytest.raises(ValueError, match="shape_swap_min_sigma"):
        dataclasses.replace(tiny_train_config(), shape_swap_min_sigma=1.5)


def test_swap_source_weights_redraw_scenes_as_the_named_shape_that_much_more_often() -> None:
    from reelgen.demo.train import swap_shape
    from reelgen.demo.world import is_held_out

    rng = np.random.default_rng(4)
    specs = [s for s in (sample_spec(rng, "train") for _ in range(1500)) if s.shape != "circle"]
    plain = [swap_shape(s, seed=i) for i, s in enumerate(specs)]
    weighted = [swap_shape(s, seed=i, weights={"circle": 5.0}) for i, s in enumerate(specs)]
    assert all(w.shape != s.shape and not is_held_out(w) for w, s in zip(weighted, specs, strict=True))
    # Six other shapes (fewer where a held-out triple rules one out): circle odds 5 of 10, against 1 of 6 unweighted.
    circles = np.mean([w.shape == "circle" for w in weighted])
    assert 0.42 < circles < 0.6 and np.mean([p.shape == "circle" for p in plain]) < 0.25, circles
    assert swap_shape(specs[0], seed=0, weights={}) == plain[0]  # no weights: the caches of earlier runs
    with pytest.raises(ValueError, match="swap_source_weights: unknown shape 'moon'"):
        dataclasses.replace(tiny_train_config(), swap_source_weights={"moon": 2.0})


def test_shape_swap_samples_start_from_the_swapped_scene_and_aim_at_the_true_one(tmp_path: Path) -> None:
    config = dataclasses.replace(tiny_train_config(), shape_swap=1.0, shape_swap_min_sigma=0.0)
    trainer = Trainer(tmp_path / "run", config, progress=lambda _: None)
    trainer.train_vae()
    cache = trainer.build_cache()
    from reelgen.demo.model import normalize_latents
    from reelgen.demo.train import spec_from_json

    assert cache["swapped_latents"].shape == cache["latents"].shape
    assert not torch.equal(cache["swapped_latents"], cache["latents"])
    x0 = normalize_latents(trainer.pipe.vae, cache["latents"])
    swapped = normalize_latents(trainer.pipe.vae, cache["swapped_latents"])
    specs = [spec_from_json(s) for s in cache["specs"]]
    with torch.no_grad():
        plain = trainer.flow_matching_loss(x0, specs, step=0, masks=cache["masks"])
        # A "swap" to the scene itself is the plain sample: the target reduces to the velocity noise - x0.
        same = trainer.flow_matching_loss(x0, specs, step=0, masks=cache["masks"], swapped_all=x0)
        other = trainer.flow_matching_loss(x0, specs, step=0, masks=cache["masks"], swapped_all=swapped)
    assert torch.allclose(plain, same, rtol=1e-4)
    assert abs(plain.item() - other.item()) > 1e-5 * plain.item()


def test_rollout_samples_start_from_one_sampling_step_with_the_models_own_prediction(tmp_path: Path) -> None:
    config = dataclasses.replace(tiny_train_config(), rollout=1.0, rollout_min_sigma=0.5, batch=6)
    trainer = Trainer(tmp_path / "run", config, progress=lambda _: None)
    torch.manual_seed(0)
    x0, noise = torch.randn(2, config.batch, TINY.z_dim, 17, 16, 16)
    sigma = torch.linspace(0.1, 0.95, config.batch)
    s = sigma.view(-1, 1, 1, 1, 1)
    xt, target = (1 - s) * x0 + s * noise, noise - x0
    embeds = torch.randn(config.batch, 8, trainer.pipe.transformer.config.text_dim)
    rolled, rolled_target = trainer._roll_out(xt, target, x0, x0, noise, sigma, embeds, step=0)
    low = sigma < 0.5
    assert torch.equal(rolled[low], xt[low]) and torch.equal(rolled_target[low], target[low])
    # Above the floor the input moved (a random model is no oracle), and the target is still the velocity that
    # lands on the true x0 from it.
    assert (rolled[~low] - xt[~low]).abs().amax(dim=(1, 2, 3, 4)).min() > 1e-3
    assert torch.allclose(rolled - s * rolled_target, x0, atol=1e-5)
    with pytest.raises(ValueError, match="rollout"):
        dataclasses.replace(config, rollout=1.5)


def test_shape_weights_pick_the_named_shapes_that_much_more_often(tmp_path: Path) -> None:
    config = dataclasses.replace(tiny_train_config(), shape_weights={"star": 3.0}, batch=50)
    trainer = Trainer(tmp_path / "run", config, progress=lambda _: None)
    specs = [sample_spec(np.random.default_rng(i), "train") for i in range(400)]
    stars = np.array([s.shape == "star" for s in specs])
    picks = np.concatenate([trainer.pick_batch(specs, np.random.default_rng(i)) for i in range(400)])
    expected = 3 * stars.sum() / (3 * stars.sum() + (~stars).sum())
    assert abs(stars[picks].mean() - expected) < 0.02, (stars[picks].mean(), expected, stars.mean())
    plain = Trainer(tmp_path / "plain", dataclasses.replace(config, shape_weights={}), progress=lambda _: None)
    uniform = np.random.default_rng(0).integers(400, size=50)  # runs without weights draw their batches as before
    assert np.array_equal(plain.pick_batch(specs, np.random.default_rng(0)), uniform)
    with pytest.raises(ValueError, match="unknown shape 'moon'"):
        dataclasses.replace(config, shape_weights={"moon": 2.0})
    with pytest.raises(ValueError, match="shape_weights"):
        dataclasses.replace(config, shape_weights={"star": 0.0})


def test_resume_continues_the_step_counter_and_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    quiet = {"progress": lambda _: None}
    straight = Trainer(tmp_path / "straight", tiny_train_config(steps=4), **quiet)
    assert straight.run() == 4

    first = Trainer(tmp_path / "resumed", tiny_train_config(steps=2), **quiet)
    assert first.run() == 2
    with pytest.raises(FileExistsError):
        Trainer(tmp_path / "resumed", tiny_train_config(steps=4), **quiet)
    second = Trainer(tmp_path / "resumed", tiny_train_config(steps=4), resume=True, **quiet)
    assert second.run() == 4

    steps = [
        r["step"]
        for r in map(json.loads, (tmp_path / "resumed" / "log.jsonl").read_text().splitlines())
        if r["stage"] == "transformer"
    ]
    assert steps == [1, 2, 3, 4]
    a = torch.load(tmp_path / "straight" / "state.pt", weights_only=False)
    b = torch.load(tmp_path / "resumed" / "state.pt", weights_only=False)
    assert a["step"] == b["step"] == 4
    for key in ("modules", "ema"):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key
    assert (tmp_path / "resumed" / "pipeline" / "model_index.json").is_file()


def test_a_new_run_can_start_from_another_runs_trained_vae(tmp_path: Path) -> None:
    quiet = {"progress": lambda _: None}
    first = Trainer(tmp_path / "first", tiny_train_config(), **quiet)
    first.train_vae()
    assert (tmp_path / "first" / "vae" / "diffusion_pytorch_model.safetensors").is_file()
    config = dataclasses.replace(tiny_train_config(), vae_steps=0)  # 0: no clip steps on top of the warm start
    second = Trainer(tmp_path / "second", config, init_vae=tmp_path / "first" / "vae", **quiet)
    second.train_vae()
    a, b = first.pipe.vae.state_dict(), second.pipe.vae.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    records = [json.loads(line) for line in (tmp_path / "second" / "log.jsonl").read_text().splitlines()]
    assert [r for r in records if r["stage"] == "vae" and "recon" in r] == []  # no VAE step was trained


def test_widening_the_latent_keeps_what_the_vae_reconstructs() -> None:
    from reelgen.demo.model import build_vae, widen_latents
    from reelgen.demo.train import clips_to_tensor
    from reelgen.demo.world import render, sample_spec

    torch.manual_seed(0)
    narrow = build_vae(TINY)
    # Trained weights are not zero-centred: perturb the initialisation so the test cannot pass by accident.
    with torch.no_grad():
        for p in narrow.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    wide = build_vae(dataclasses.replace(TINY, z_dim=8))
    widen_latents(narrow, wide)
    clip = render(sample_spec(np.random.default_rng(0)), 9, 32, 32, seed=0)
    x = clips_to_tensor(clip[None])
    with torch.no_grad():
        before = narrow.decode(narrow.encode(x).latent_dist.mode()).sample
        posterior = wide.encode(x).latent_dist
        after = wide.decode(posterior.mode()).sample
    assert posterior.mean.shape[1] == 8
    assert torch.allclose(before, after, atol=1e-5)
    assert float(posterior.logvar[:, 4:].max()) < -6  # the new channels start almost deterministic
    with pytest.raises(ValueError, match="narrow"):
        widen_latents(wide, build_vae(TINY))


def test_widening_the_decoder_keeps_what_the_vae_decodes() -> None:
    from reelgen.demo.model import build_vae, decoder_width, widen_decoder
    from reelgen.demo.train import clips_to_tensor
    from reelgen.demo.world import render, sample_spec

    torch.manual_seed(0)
    narrow = build_vae(dataclasses.replace(TINY, vae_decoder_scale=1))
    with torch.no_grad():
        for p in narrow.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    wide = widen_decoder(narrow, 12, noise=0.0)
    assert decoder_width(narrow) == 4 and decoder_width(wide) == 12
    x = clips_to_tensor(render(sample_spec(np.random.default_rng(1)), 5, 32, 32, seed=0)[None])
    with torch.no_grad():
        z = narrow.encode(x).latent_dist.mode()
        assert torch.equal(z, wide.encode(x).latent_dist.mode())  # the encoder is untouched
        before, after = narrow.decode(z).sample, wide.decode(z).sample
    assert torch.allclose(before, after, atol=1e-5)
    assert sum(p.numel() for p in wide.decoder.parameters()) > 5 * sum(p.numel() for p in narrow.decoder.parameters())
    with pytest.raises(ValueError, match="multiple"):
        widen_decoder(narrow, 6)


def test_the_decoder_stage_widens_an_init_vae_and_trains_only_the_decoder(tmp_path: Path) -> None:
    quiet = {"progress": lambda _: None}
    narrow = dataclasses.replace(tiny_train_config(), model=dataclasses.replace(TINY, vae_decoder_scale=1))
    first = Trainer(tmp_path / "first", narrow, **quiet)
    first.train_vae()
    config = dataclasses.replace(tiny_train_config(), vae_steps=0, decoder_steps=2, checkpoint_every=1)
    second = Trainer(tmp_path / "second", config, init_vae=tmp_path / "first" / "vae", **quiet)
    second.train_vae()
    widened = {k: v.clone() for k, v in second.pipe.vae.state_dict().items()}
    second.train_decoder()
    a, b = first.pipe.vae.state_dict(), second.pipe.vae.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith(("encoder.", "quant_conv.")))
    assert b["decoder.conv_out.weight"].shape[1] == 2 * a["decoder.conv_out.weight"].shape[1]
    assert not torch.equal(widened["decoder.conv_out.weight"], b["decoder.conv_out.weight"])
    records = [json.loads(line) for line in (tmp_path / "second" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["stage"] == "decoder"] == [1, 2]
    # Resumed, the finished stage is not repeated and the run's exported VAE is the trained one.
    again = Trainer(tmp_path / "second", config, resume=True, **quiet)
    again.train_vae()
    again.train_decoder()
    c = again.pipe.vae.state_dict()
    assert all(torch.equal(b[k], c[k]) for k in b)
    assert (tmp_path / "second" / "vae" / "config.json").is_file()


def test_latent_object_mask_follows_the_object_at_latent_resolution() -> None:
    from reelgen.demo.train import latent_mask

    mask = np.zeros((9, 16, 16), dtype=bool)
    mask[0, 0:2, 0:2] = True  # frame 0: top-left corner
    mask[5, 8:10, 12:14] = True  # frame 5: in the second group of four frames
    per_frame = latent_mask(mask, spatial=4, temporal=1)
    assert per_frame.shape == (9, 4, 4)
    assert per_frame[0, :2, :2].all() and per_frame[0].sum() == 4  # the block and its grown neighbours
    assert per_frame[5, 1:4, 2:4].all() and per_frame[5].sum() == 6
    assert not per_frame[[1, 2, 3, 4, 6, 7, 8]].any()
    grouped = latent_mask(mask, spatial=4, temporal=4)
    assert grouped.shape == (3, 4, 4)
    assert grouped[2].sum() == 6 and not grouped[1].any()


def test_a_run_can_continue_the_transformer_of_an_exported_pipeline(tmp_path: Path) -> None:
    quiet = {"progress": lambda _: None}
    first = Trainer(tmp_path / "first", tiny_train_config(steps=2), **quiet)
    first.run()
    exported = tmp_path / "first" / "pipeline"
    config = dataclasses.replace(tiny_train_config(steps=0), vae_image_steps=0, vae_steps=0)
    second = Trainer(tmp_path / "second", config, init_vae=exported / "vae", init_transformer=exported, **quiet)
    second.train_transformer(second.build_cache())  # zero steps: only the weights are taken over
    saved = load_wan_pipeline(exported, dtype=torch.float32, device="cpu")
    for name in ("transformer", "text_encoder"):
        a, b = getattr(saved, name).state_dict(), getattr(second.pipe, name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    records = [json.loads(line) for line in (tmp_path / "second" / "log.jsonl").read_text().splitlines()]
    assert any(r["stage"] == "transformer" and r.get("init_from") == str(exported) for r in records)


def test_the_demo_transformer_is_wan_plus_absolute_positions(tmp_path: Path) -> None:
    from diffusers.models.transformers.transformer_wan import WanTransformer3DModel

    from reelgen.demo.model import build_transformer
    from reelgen.demo.train import load_transformer_weights

    demo = build_transformer(
        dataclasses.replace(TINY, prediction="velocity", pooled_text=False, position_modulation=False)
    )
    assert demo.patch_embedding.frame_embed.shape[0] == 17 and demo.patch_embedding.row_embed.shape[0] == 4
    # A plain Wan transformer's weights (what shipped before positions) load, and compute what they did.
    config = {
        k: v
        for k, v in demo.config.items()
        if not k.startswith("_") and k not in ("position_grid", "prediction", "pooled_text", "position_modulation")
    }
    torch.manual_seed(1)
    plain = WanTransformer3DModel(**config)
    plain.save_pretrained(tmp_path / "plain")
    load_transformer_weights(demo, tmp_path / "plain")
    x, t, text = torch.randn(1, 4, 17, 16, 16), torch.tensor([700.0]), torch.randn(1, 5, 16)
    with torch.no_grad():
        assert torch.equal(plain(x, t, text, return_dict=False)[0], demo(x, t, text, return_dict=False)[0])
        # Where every token holds the same content, RoPE alone (relative positions) gives every token the same
        # output: nothing says which frame or where in it a token is. The position tables do.
        demo.patch_embedding.frame_embed.normal_()
        demo.patch_embedding.col_embed.normal_()
        flat = torch.randn(1, 4, 1, 1, 1).expand(1, 4, 17, 16, 16)
        # (the first latent pixel of each token's 4x4 output patch)
        same = plain(flat, t, text, return_dict=False)[0][..., ::4, ::4]
        placed = demo(flat, t, text, return_dict=False)[0][..., ::4, ::4]
        assert torch.allclose(same, same[:, :, :1, :1, :1].expand_as(same), atol=1e-5)
        assert (placed[:, :, 0] - placed[:, :, -1]).abs().mean() > 1e-2  # first and last frame differ
        assert (placed[..., 0] - placed[..., -1]).abs().mean() > 1e-2  # left and right edge differ
        with pytest.raises(ValueError, match="larger than the positions"):
            demo(torch.randn(1, 4, 21, 16, 16), t, text)
    # Anything else that does not fit is refused rather than half loaded.
    with pytest.raises(ValueError, match="do not fit"):
        load_transformer_weights(build_transformer(dataclasses.replace(TINY, layers=2)), tmp_path / "plain")


def test_a_frozen_text_encoder_keeps_its_weights_and_a_fresh_one_is_not_taken_over(tmp_path: Path) -> None:
    quiet = {"progress": lambda _: None}
    first = Trainer(tmp_path / "first", tiny_train_config(steps=2), **quiet)
    first.run()
    exported = tmp_path / "first" / "pipeline"
    config = dataclasses.replace(tiny_train_config(steps=2), vae_image_steps=0, vae_steps=0, text_encoder="frozen")
    second = Trainer(
        tmp_path / "second",
        config,
        init_vae=exported / "vae",
        init_transformer=exported,
        fresh_text_encoder=True,
        **quiet,
    )
    fresh = {k: v.clone() for k, v in second.pipe.text_encoder.state_dict().items()}
    taken = load_wan_pipeline(exported, dtype=torch.float32, device="cpu").text_encoder.state_dict()
    assert second.train_transformer(second.build_cache()) == 2
    after = second.pipe.text_encoder.state_dict()
    assert all(torch.equal(fresh[k], after[k]) for k in fresh)  # frozen: two steps changed nothing
    assert not all(torch.equal(taken[k], after[k]) for k in taken)  # fresh: not the exported encoder
    # The transformer did train, from the exported weights.
    saved = load_wan_pipeline(exported, dtype=torch.float32, device="cpu").transformer.state_dict()
    trained = second.pipe.transformer.state_dict()
    assert not all(torch.equal(saved[k], trained[k]) for k in saved)
    with pytest.raises(ValueError, match="text_encoder must be"):
        dataclasses.replace(config, text_encoder="thawed")


def test_sample_prediction_returns_the_velocity_to_the_predicted_clean_latent(tmp_path: Path) -> None:
    from reelgen.demo.model import build_transformer
    from reelgen.demo.train import load_transformer_weights
    from reelgen.demo.transformer import DemoWanTransformer3DModel

    torch.manual_seed(2)
    velocity = build_transformer(dataclasses.replace(TINY, prediction="velocity"))
    velocity.save_pretrained(tmp_path / "v")
    sample = build_transformer(TINY)
    assert sample.config["prediction"] == "sample"
    load_transformer_weights(sample, tmp_path / "v")
    x, t, text = torch.randn(2, 4, 17, 16, 16), torch.tensor([700.0, 250.0]), torch.randn(2, 5, 16)
    with torch.no_grad():
        clean = velocity(x, t, text, return_dict=False)[0]  # the same network: its output read as x0
        v = sample(x, t, text).sample
    sigma = (t / 1000).view(-1, 1, 1, 1, 1)
    torch.testing.assert_close(v, (x - clean) / sigma)
    # One Euler step to sigma 0 lands on the predicted clean latent.
    torch.testing.assert_close(x - sigma * v, clean, rtol=1e-4, atol=1e-4)
    # The parametrization is saved with the weights and comes back with them.
    sample.save_pretrained(tmp_path / "s")
    assert DemoWanTransformer3DModel.from_pretrained(tmp_path / "s").config["prediction"] == "sample"
    with pytest.raises(ValueError, match="prediction"):
        build_transformer(dataclasses.replace(TINY, prediction="epsilon"))


def test_an_init_transformer_with_a_narrower_feed_forward_loads_widened_and_computes_the_same(tmp_path: Path) -> None:
    from reelgen.demo.model import build_transformer
    from reelgen.demo.train import load_transformer_weights

    torch.manual_seed(3)
    narrow = build_transformer(TINY)
    for p in narrow.parameters():  # trained-looking weights: zero-initialised heads would hide a wrong widening
        p.data.normal_(0, 0.2)
    narrow.save_pretrained(tmp_path / "narrow")
    wide = build_transformer(dataclasses.replace(TINY, ffn_dim=TINY.ffn_dim * 2))
    load_transformer_weights(wide, tmp_path / "narrow")
    assert wide.blocks[0].ffn.net[2].weight.shape[1] == 2 * TINY.ffn_dim
    x, t, text = torch.randn(2, 4, 17, 16, 16), torch.tensor([700.0, 250.0]), torch.randn(2, 5, 16)
    with torch.no_grad():
        before, after = narrow(x, t, text).sample, wide(x, t, text).sample
    # The same function up to the 1% that lets the copies part ways.
    assert 0 < (after - before).abs().max() < 0.03 * before.abs().max()
    copies = wide.blocks[0].ffn.net[0].proj.weight
    assert not torch.equal(copies[: TINY.ffn_dim], copies[TINY.ffn_dim :])
    odd = build_transformer(dataclasses.replace(TINY, ffn_dim=TINY.ffn_dim + 8))
    with pytest.raises(ValueError, match="not a multiple"):
        load_transformer_weights(odd, tmp_path / "narrow")


def test_pooled_text_starts_silent_and_then_modulates_every_token(tmp_path: Path) -> None:
    from reelgen.demo.model import build_transformer
    from reelgen.demo.train import load_transformer_weights

    torch.manual_seed(3)
    without = build_transformer(dataclasses.replace(TINY, pooled_text=False, position_modulation=False))
    without.save_pretrained(tmp_path / "without")
    pooled = build_transformer(TINY)
    load_transformer_weights(pooled, tmp_path / "without")  # older weights load: the projection stays zero
    x, t = torch.randn(1, 4, 17, 16, 16), torch.tensor([900.0])
    text = torch.cat([torch.randn(1, 3, 16), torch.zeros(1, 2, 16)], dim=1)  # a 3-token prompt, zero-padded
    with torch.no_grad():
        torch.testing.assert_close(pooled(x, t, text, return_dict=False)[0], without(x, t, text, return_dict=False)[0])
        pooled.condition_embedder.pooled_embedder.weight.normal_()
        moved = pooled(x, t, text, return_dict=False)[0]
        assert not torch.allclose(moved, without(x, t, text, return_dict=False)[0])
        # Padding is not part of the prompt: more zero positions change nothing.
        longer = torch.cat([text, torch.zeros(1, 4, 16)], dim=1)
        torch.testing.assert_close(pooled.condition_embedder(t, longer)[0], pooled.condition_embedder(t, text)[0])


def test_position_modulation_tells_every_token_where_it_is_whatever_its_noise() -> None:
    from reelgen.demo.model import build_transformer

    torch.manual_seed(4)
    model = build_transformer(TINY)
    text = torch.randn(1, 3, 16)
    flat = torch.randn(1, 4, 1, 1, 1).expand(1, 4, 17, 16, 16).contiguous()
    with torch.no_grad():
        model.patch_embedding.frame_embed.zero_()  # no position in the tokens themselves
        out = model(flat, torch.tensor([1000.0]), text, return_dict=False)[0]
        assert torch.allclose(out[:, :, 0], out[:, :, 16], atol=1e-5)  # zero-initialised: frames alike
        model.condition_embedder.frame_embed.normal_()
        out = model(flat, torch.tensor([1000.0]), text, return_dict=False)[0]
    assert not torch.allclose(out[:, :, 0], out[:, :, 16], atol=1e-3)


def test_canonical_captions_replace_random_wording_in_their_share(tmp_path: Path) -> None:
    import dataclasses as dc

    from reelgen.demo.captions import caption
    from reelgen.demo.world import sample_spec

    spec = sample_spec(np.random.default_rng(0))
    trainer = Trainer(tmp_path / "run", dc.replace(tiny_train_config(), canonical_captions=0.9))
    rng = np.random.default_rng(1)
    drawn = [trainer._training_caption(spec, rng) for _ in range(200)]
    assert set(drawn) == {"", caption(spec)} and 5 < drawn.count("") < 40
    plain = Trainer(tmp_path / "plain", tiny_train_config())
    assert len({plain._training_caption(spec, rng) for _ in range(200)}) > 5  # the default: random wording
    with pytest.raises(ValueError, match="canonical_captions"):
        dc.replace(tiny_train_config(), canonical_captions=0.95)


def test_the_transformer_rate_warms_up_then_stays_or_anneals_to_final_lr() -> None:
    from reelgen.demo.train import transformer_lr

    constant = dataclasses.replace(tiny_train_config(steps=1000), lr=1e-3, warmup=100)
    assert transformer_lr(constant, 49) == pytest.approx(5e-4)
    assert transformer_lr(constant, 100) == transformer_lr(constant, 999) == pytest.approx(1e-3)
    annealed = dataclasses.replace(constant, final_lr=1e-4)
    assert transformer_lr(annealed, 49) == pytest.approx(5e-4 * (1 - 0.9 * (1 - np.cos(np.pi * 0.049)) / 2))
    assert transformer_lr(annealed, 500) == pytest.approx(5.5e-4)
    assert transformer_lr(annealed, 1000) == pytest.approx(1e-4)
    rates = [transformer_lr(annealed, s) for s in range(100, 1001)]
    assert all(a >= b for a, b in itertools.pairwise(rates))
    with pytest.raises(ValueError, match="final_lr"):
        dataclasses.replace(constant, final_lr=2e-3)
    with pytest.raises(ValueError, match="loss_sigma_floor"):
        dataclasses.replace(constant, loss_sigma_floor=0.0)


def test_latent_detail_is_high_on_edges_and_zero_on_flat_areas() -> None:
    from reelgen.demo.train import latent_detail

    x0 = torch.zeros(1, 2, 3, 8, 8)
    x0[:, :, :, 2:5, 2:5] = 1.0  # a square: edges, a flat inside, a flat outside
    detail = latent_detail(x0)
    assert detail.mean().item() == pytest.approx(1.0)
    assert detail[0, 0, 0, 3, 3] == 0 and detail[0, 0, 0, 7, 7] == 0
    assert detail[0, 0, 0, 2, 2] > 1 and detail[0, 0, 0, 1, 3] > 1
    with pytest.raises(ValueError, match="detail_weight"):
        dataclasses.replace(tiny_train_config(), detail_weight=-1)
