"""Train the reelgen-demo model (``reelgen train-demo``): VAE, then a latent cache, then text encoder + transformer.

Stages, each resumable from the run folder (``--resume``):

1. **VAE** (``vae.pt``): ``AutoencoderKLWan``, first on single frames (``vae_image_steps``: colour and shape are
   spatial, and 16 one-frame scenes cost about what 3 whole clips do), then on whole rendered 17-frame training
   clips (it is causal in time and carries a cache from chunk to chunk, so clips must span all 17 frames).
   L1 + MSE reconstruction weighted towards the object's pixels (a shape covers 2-6% of the frame; unweighted,
   the VAE learns the background first and blurs objects away for hundreds of steps), and a small KL term.
   **1b. Decoder** (``decoder.pt``, ``decoder_steps``, none by default): the decoder alone, the encoder frozen;
   an ``--init-vae`` with a narrower decoder than ``ModelConfig`` asks for is widened first (``widen_decoder``).
2. **Latent cache** (``cache.pt``): ``cache_size`` training-split scenes (``sample_spec(rng, "train")``, so
   held-out combinations never reach the model) encoded to the VAE posterior mean, plus their specs; the
   per-channel mean/std go into the VAE config (``latents_mean``/``latents_std``) like a real Wan VAE's.
3. **Transformer + text encoder** (``state.pt``): rectified flow matching as Wan trains it: ``x_t = (1 - s) x0 +
   s eps``, the transformer returns the velocity ``eps - x0`` at timestep ``1000 s``, with ``s`` drawn uniformly and
   shifted by the scheduler's shift (3). With ``ModelConfig.prediction == "sample"`` its network predicts ``x0``
   and returns ``(x_t - x0) / s`` (demo.transformer), and the error is weighted by ``min(1, s / 0.25)^2``: the
   clean-latent error, except that near-clean samples do not dominate. A fresh random caption per sample and step
   (templates and synonyms), replaced by the empty prompt 10% of the time so classifier-free guidance works. The
   squared error counts ``1 + object_weight`` on latent positions the object covers (re-rendered masks, grown by
   one latent pixel), 1 elsewhere. With ``shape_swap`` the cache also holds each scene drawn with another shape
   (``swap_shape``), and that share of the noisier samples starts from it while caption and target stay the true
   scene's. With ``rollout`` a share of them takes as input one Euler step of sampling from a noisier version,
   with the model's own prediction there (the round blobs sampling makes, not sharp shapes); ``detail_weight``
   weighs the error more where the latents hold edges and points. ``shape_weights`` picks scenes of the named
   shapes that much more often for batches. An EMA of the weights is what gets exported.

Every batch is a pure function of (seed, step), so a resumed run sees exactly the batches an uninterrupted
one would. Checkpoints hold the step counter, weights, EMA and optimizer; each checkpoint also exports the EMA
pipeline with ``save_pretrained`` to ``<run>/pipeline`` (and ``--export`` if given), loadable by
``reelgen.engines.wan.load_wan_pipeline``.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers.models.autoencoders.autoencoder_kl_wan import AutoencoderKLWan
from diffusers.pipelines.wan.pipeline_wan import WanPipeline
from safetensors.torch import load_file
from transformers import UMT5EncoderModel

from reelgen.demo.captions import caption
from reelgen.demo.model import (
    FLOW_SHIFT,
    NUM_FRAMES,
    SIZE,
    ModelConfig,
    build_pipeline,
    decoder_width,
    encode_prompts,
    normalize_latents,
    set_latent_stats,
    widen_decoder,
    widen_latents,
)
from reelgen.demo.transformer import PositionedPatchEmbedding
from reelgen.demo.world import HELD_OUT, SHAPES, ObjectSpec, SceneSpec, background_image, render, sample_spec

log = logging.getLogger(__name__)

POSITION_TABLES = ("frame_embed", "row_embed", "col_embed")


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    # Stage 1: VAE.
    vae_image_steps: int = 3000
    vae_image_batch: int = 16
    vae_steps: int = 600
    vae_batch: int = 3
    # Whole 17-frame clips (small spatial crops keep the cost down): the causal cache that carries features from
    # one 4-frame chunk to the next must see as many chunks as generation decodes. Trained on 5-frame crops the
    # VAE fell apart after the first chunk; on 9-frame crops, after the second (benchmarks/README.md).
    vae_frames: int = 17
    # Whole 64x64 frames: random 32x32 crops mostly missed the object entirely.
    vae_crop: int = SIZE
    vae_object_weight: float = 10.0
    vae_lr: float = 5e-4
    kl_weight: float = 1e-7
    # Stage 1b: the decoder alone on whole clips, the encoder frozen (so latents, the cache and a transformer
    # trained on them keep their meaning): how a wider decoder (ModelConfig.vae_decoder_scale) learns detail on
    # top of an --init-vae. Fine-tuning from the end of stage 1 wants a rate near where stage 1 ended (5e-5):
    # at 3e-4 the widened decoder's loss on fixed clips rose 64% in 250 steps, at 1e-4 14%, and was 27% below
    # where it started by step 3,000 (benchmarks/README.md).
    decoder_steps: int = 0
    decoder_lr: float = 1e-4
    # Stage 2: latent cache.
    cache_size: int = 4000
    # Stage 3: transformer + text encoder.
    steps: int = 100000
    batch: int = 32
    lr: float = 1e-3
    warmup: int = 200
    # None: the rate stays at ``lr`` after warm-up. A value: it follows a cosine from ``lr`` down to this at
    # ``steps``, to finish a continued run (sessions 3-9 trained at a constant 1e-3, the EMA their only smoothing).
    final_lr: float | None = None
    caption_dropout: float = 0.1
    # Share of captions in the canonical wording ("a red circle moves to the left on a black background"); the
    # rest are random templates and synonyms. With a frozen random text encoder every synonym is a separate
    # vector and "left"/"right" also occur in diagonal and bouncing captions: measured at sigma 1 on 684 left/right
    # clips, 300 steps on random captions did not separate the two paths at all, while canonical captions did
    # within 150 (and within 50 on one colour and background).
    canonical_captions: float = 0.0
    # Extra flow-matching loss weight on latent positions the object covers (and their neighbours): the object
    # is 2-3% of the latent grid, and unweighted the transformer spent its first thousands of steps on
    # backgrounds only.
    object_weight: float = 4.0
    ema_decay: float = 0.998
    # With "sample" prediction the velocity error is the clean-latent error over sigma; below this sigma the
    # weight stops growing (1/sigma^2 would give the rare near-clean samples up to thousands of times the weight).
    loss_sigma_floor: float = 0.25
    # Share of samples at sigma >= shape_swap_min_sigma whose noisy input is made from the same scene drawn with
    # another shape (same seed, place, size, colour and path), while the caption and the target stay the true
    # scene's. Sampling from noise, the first steps draw a round blob and from sigma ~0.7 on the model sharpens
    # what it sees: measured in session 10, a noised circle asked to be a star stayed a circle (8/37 switched at
    # sigma 0.85), so the words never decided the shape. These samples are that case with its answer.
    shape_swap: float = 0.0
    shape_swap_min_sigma: float = 0.5
    # How often a cached scene is picked for a batch, relative to 1, by its shape (shapes not named: 1). Stars and
    # squares were the shapes the transformer drew worst (session 11: 0/21 and 9/19 held out) while the VAE gives
    # them back; picking them more often spends more of the updates where the errors are.
    shape_weights: dict[str, float] = field(default_factory=dict)
    # How often each shape is the one a scene is redrawn as for --shape-swap, relative to 1 (shapes not named: 1).
    # Sampling, the first steps draw a round blob whatever the words say, and stars were read as circles (session
    # 12: 4/21 held out): a circle as the swapped-in shape is exactly the input the words must turn into a star.
    swap_source_weights: dict[str, float] = field(default_factory=dict)
    # Share of samples at sigma >= rollout_min_sigma whose noisy input is what sampling would give there: the
    # scene noised to a higher sigma (drawn between sigma and 1), the model's own prediction from it (no
    # gradient, no guidance), one Euler step down to sigma; the target stays the true scene. Sampling, the first
    # steps draw a round blob the later ones read as a circle; a swapped scene (shape_swap) is a sharp shape,
    # this is the blob itself, where the words asking for a star have to win.
    rollout: float = 0.0
    rollout_min_sigma: float = 0.3
    # Extra loss weight on latent detail: each element's |x0 - its 3x3 spatial mean| over that quantity's mean in
    # the batch, times this. Sampling, stars come out as round blobs of about a star's area: the mass is learned,
    # the points (high spatial frequencies, a small share of even the object-weighted error) are not.
    detail_weight: float = 0.0
    # Learning-rate multiplier for the transformer's absolute position tables (demo.transformer): they start at
    # zero in a warm-started model, and at the base rate they had grown to a norm of 0.1-0.5 after 1,000 steps,
    # next to token vectors of norm ~16, too faint to tell frames apart.
    position_lr_scale: float = 10.0
    # Amplitude of the sinusoidal code the position tables start from (demo.transformer.sinusoidal_), next to
    # token vectors of about 1.4 per channel.
    position_amplitude: float = 1.0
    # "joint": the text encoder trains with the transformer. "frozen": it keeps its starting weights (a fresh
    # run's random ones, or --init-transformer's unless --fresh-text-encoder), as real Wan keeps UMT5 frozen.
    # Trained jointly, the 2-layer encoder squeezed the motion words together (output distance "left" vs
    # "right" 1.1, "red" vs "blue" 7.8, token norm 6) while the transformer could not use them yet; a frozen
    # random encoder keeps every word apart by construction.
    text_encoder: str = "joint"
    checkpoint_every: int = 250
    log_every: int = 25

    def __post_init__(self) -> None:
        if self.text_encoder not in ("joint", "frozen"):
            raise ValueError(f"text_encoder must be 'joint' or 'frozen', not {self.text_encoder!r}")
        if not 0.0 <= self.canonical_captions <= 1.0 - self.caption_dropout:
            raise ValueError(f"canonical_captions must be between 0 and {1.0 - self.caption_dropout:g}")
        if not 0.0 < self.loss_sigma_floor <= 1.0:
            raise ValueError(f"loss_sigma_floor must be above 0 and at most 1, not {self.loss_sigma_floor:g}")
        if self.object_weight < 0:
            raise ValueError(f"object_weight must be 0 or more, not {self.object_weight:g}")
        if not 0.0 <= self.shape_swap <= 1.0:
            raise ValueError(f"shape_swap must be between 0 and 1, not {self.shape_swap:g}")
        if not 0.0 <= self.shape_swap_min_sigma <= 1.0:
            raise ValueError(f"shape_swap_min_sigma must be between 0 and 1, not {self.shape_swap_min_sigma:g}")
        if not 0.0 <= self.detail_weight <= 100.0:
            raise ValueError(f"detail_weight must be between 0 and 100, not {self.detail_weight:g}")
        if not 0.0 <= self.rollout <= 1.0:
            raise ValueError(f"rollout must be between 0 and 1, not {self.rollout:g}")
        if not 0.05 <= self.rollout_min_sigma <= 1.0:
            raise ValueError(f"rollout_min_sigma must be between 0.05 and 1, not {self.rollout_min_sigma:g}")
        for name, weights in (("shape_weights", self.shape_weights), ("swap_source_weights", self.swap_source_weights)):
            for shape, weight in weights.items():
                if shape not in SHAPES:
                    raise ValueError(f"{name}: unknown shape {shape!r} (shapes: {', '.join(SHAPES)})")
                if not 0.0 < weight <= 100.0:
                    raise ValueError(f"{name}[{shape!r}] must be above 0 and at most 100, not {weight:g}")
        if self.final_lr is not None and not 0.0 < self.final_lr <= self.lr:
            raise ValueError(f"final_lr must be above 0 and at most lr ({self.lr:g}), not {self.final_lr:g}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# --- data ------------------------------------------------------------------------------------------------------


def load_transformer_weights(transformer: torch.nn.Module, folder: Path) -> None:
    """Load an exported transformer's safetensors into ``transformer``. Weights from before the demo transformer
    had absolute positions (a plain ``WanTransformer3DModel``) or pooled text load too: their position tables
    keep whatever ``transformer`` had (the trainer's sinusoidal start), the pooled-text projection its zeros.
    Any other mismatch is an error."""
    state: dict[str, torch.Tensor] = {}
    for file in sorted(folder.glob("*.safetensors")):
        state.update(load_file(file))
    state = widen_ffn(state, transformer.state_dict())
    missing, unexpected = transformer.load_state_dict(state, strict=False)
    allowed = {
        "patch_embedding.frame_embed",
        "patch_embedding.row_embed",
        "patch_embedding.col_embed",
        "condition_embedder.pooled_embedder.weight",
        "condition_embedder.pooled_embedder.bias",
        "condition_embedder.frame_embed",
        "condition_embedder.row_embed",
        "condition_embedder.col_embed",
    }
    if unexpected or set(missing) - allowed:
        raise ValueError(f"{folder}: weights do not fit the demo transformer (missing {missing}, extra {unexpected})")


def widen_ffn(
    state: dict[str, torch.Tensor], target: dict[str, torch.Tensor], noise: float = 0.01
) -> dict[str, torch.Tensor]:
    """``state`` with each block's feed-forward widened to ``target``'s hidden width (a multiple), computing
    nearly the same function: every hidden unit is repeated and the output weights divided by the copies (the
    activation is elementwise, so this alone is exact), then ``noise`` (relative to the weights' spread, seeded)
    on the copies' input weights, or they would get the same gradients and stay copies. Other weights, and a
    state of the same width, pass as they are."""
    gen = torch.Generator().manual_seed(0)
    wide = dict(state)
    for name, value in state.items():
        want = target.get(name)
        if want is None or want.shape == value.shape or ".ffn.net." not in name:
            continue
        if name.endswith((".ffn.net.0.proj.weight", ".ffn.net.0.proj.bias")):
            dim = 0
        elif name.endswith(".ffn.net.2.weight"):
            dim = 1
        else:
            continue
        copies, rest = divmod(want.shape[dim], value.shape[dim])
        if rest or copies < 1:
            raise ValueError(f"{name}: feed-forward width {want.shape[dim]} is not a multiple of {value.shape[dim]}")
        tiled = value.repeat(*(copies if d == dim else 1 for d in range(value.dim())))
        if name.endswith(".weight") and dim == 0 and noise:
            tiled = tiled + noise * tiled.std() * torch.randn(tiled.shape, generator=gen)
        wide[name] = tiled / copies if dim == 1 else tiled
    return wide


def clips_to_tensor(clips: np.ndarray) -> torch.Tensor:
    """(B, T, H, W, 3) uint8 -> (B, 3, T, H, W) float in [-1, 1], the VAE's input."""
    return torch.from_numpy(clips).permute(0, 4, 1, 2, 3).float().div(127.5).sub(1.0)


def _rng(seed: int, stage: int, step: int) -> np.random.Generator:
    return np.random.default_rng([seed, stage, step])


def _torch_gen(seed: int, stage: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, stage, step]).generate_state(1)[0]))


def vae_batch(config: TrainConfig, step: int, *, decoder: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Freshly rendered training clips (random crops when ``vae_crop`` < SIZE) for VAE step ``step`` (of the
    decoder stage if ``decoder``), and a per-pixel loss weight: ``1 + vae_object_weight`` where the object is, 1
    on the background."""
    rng = _rng(config.seed, 4 if decoder else 1, step)
    images = not decoder and step < config.vae_image_steps  # the single-frame stage
    frames, batch = (1, config.vae_image_batch) if images else (config.vae_frames, config.vae_batch)
    shape = (batch, frames, config.vae_crop, config.vae_crop)
    out = np.empty((*shape, 3), dtype=np.uint8)
    weight = np.ones(shape, dtype=np.float32)
    for i in range(batch):
        spec, seed = sample_spec(rng, "train"), int(rng.integers(1 << 31))
        clip = render(spec, NUM_FRAMES, SIZE, SIZE, seed=seed)
        on_object = object_mask(spec, clip, seed)
        t0 = int(rng.integers(NUM_FRAMES - frames + 1))
        y0, x0 = (int(v) for v in rng.integers(SIZE - config.vae_crop + 1, size=2))
        window = (slice(t0, t0 + frames), slice(y0, y0 + config.vae_crop), slice(x0, x0 + config.vae_crop))
        out[i] = clip[window]
        weight[i] += config.vae_object_weight * on_object[window]
    return clips_to_tensor(out), torch.from_numpy(weight).unsqueeze(1)


def reconstruction_loss(rec: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    err = rec - x
    return (weight * (err.abs() + err.square())).sum() / (weight.sum() * x.shape[1])


def _cosine_lr(peak: float, step: int, total: int) -> float:
    """50 warm-up steps, then a cosine down to a tenth of ``peak``."""
    return peak * min(1.0, (step + 1) / 50) * _cosine_decay(step / total, 0.1)


def _cosine_decay(progress: float, end: float) -> float:
    """A half cosine from 1 at ``progress`` 0 down to ``end`` at 1."""
    return end + (1 - end) * 0.5 * (1 + math.cos(math.pi * progress))


def transformer_lr(cfg: TrainConfig, step: int) -> float:
    """The transformer's base rate at ``step``: linear warm-up, then constant or a cosine to ``final_lr``."""
    rate = cfg.lr * min(1.0, (step + 1) / cfg.warmup)
    if cfg.final_lr is None:
        return rate
    return rate * _cosine_decay(min(1.0, step / max(cfg.steps, 1)), cfg.final_lr / cfg.lr)


def object_mask(spec: SceneSpec, clip: np.ndarray, seed: int) -> np.ndarray:
    """(T, H, W) bool: the pixels where the rendered object differs from the plain background."""
    return np.abs(clip.astype(np.float32) - background_image(spec.background, SIZE, SIZE, seed)).max(-1) > 8


def latent_mask(mask: np.ndarray, spatial: int, temporal: int) -> np.ndarray:
    """A (T, H, W) pixel mask at the VAE's latent resolution, grown by one latent pixel: a latent position counts
    when any pixel it encodes is on the object (the first frame alone, then groups of ``temporal`` frames)."""
    t, h, w = mask.shape
    groups = [mask[:1]] + [mask[i : i + temporal] for i in range(1, t, temporal)]
    frames = np.stack([g.any(axis=0) for g in groups])
    m = np.asarray(frames.reshape(len(groups), h // spatial, spatial, w // spatial, spatial).any(axis=(2, 4)))
    grown = m.copy()
    grown[:, 1:] |= m[:, :-1]
    grown[:, :-1] |= m[:, 1:]
    grown[:, :, 1:] |= grown[:, :, :-1].copy()
    grown[:, :, :-1] |= grown[:, :, 1:].copy()
    return grown


def latent_detail(x0: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) latents -> |x0 - its 3x3 spatial mean| per element, over its mean (1 on average): where
    the latents hold edges and points rather than flat areas."""
    b, c, t, h, w = x0.shape
    frames = x0.transpose(1, 2).reshape(b * t, c, h, w)
    smooth = torch.nn.functional.avg_pool2d(frames, 3, stride=1, padding=1, count_include_pad=False)
    detail = (frames - smooth).abs().reshape(b, t, c, h, w).transpose(1, 2)
    return detail / detail.mean().clamp_min(1e-8)


def shape_odds(weights: dict[str, float], shapes: list[str]) -> np.ndarray:
    """Probabilities for drawing among ``shapes`` (repeats allowed), each in proportion to its weight (1 if not
    named): TrainConfig.shape_weights and swap_source_weights both mean this."""
    odds = np.array([weights.get(s, 1.0) for s in shapes])
    return odds / odds.sum()


def swap_shape(spec: SceneSpec, seed: int, weights: dict[str, float] | None = None) -> SceneSpec:
    """The scene with its object drawn as another shape, chosen by ``seed`` among those that keep the
    (colour, shape, motion) triple in the training split (``weights``: relative odds by shape, 1 if not named):
    everything else, the render seed included, stays."""
    obj = spec.primary
    others = [s for s in SHAPES if s != obj.shape and (obj.colour, s, obj.motion) not in HELD_OUT]
    rng = np.random.default_rng([seed, 5])
    if weights:
        shape = others[int(rng.choice(len(others), p=shape_odds(weights, others)))]
    else:  # the draw of every run before swap_source_weights: their caches stay the same
        shape = others[int(rng.integers(len(others)))]
    return replace(spec, objects=(replace(obj, shape=shape), *spec.objects[1:]))


def spec_to_json(spec: SceneSpec) -> dict[str, Any]:
    return {"background": spec.background, "objects": [asdict(o) for o in spec.objects]}


def spec_from_json(data: dict[str, Any]) -> SceneSpec:
    return SceneSpec(tuple(ObjectSpec(**o) for o in data["objects"]), data["background"])


# --- checkpoints -----------------------------------------------------------------------------------------------


def _save(obj: Any, path: Path) -> None:
    """Write then rename, so an interrupted save never leaves a truncated checkpoint behind."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def _load(path: Path) -> Any:
    # Checkpoints hold only tensors and plain containers; weights_only refuses anything that would run code.
    return torch.load(path, map_location="cpu", weights_only=True)


class Trainer:
    """Runs the three stages in ``run_dir``; every stage skips what an earlier (resumed) run finished."""

    def __init__(
        self,
        run_dir: Path,
        config: TrainConfig | None = None,
        *,
        resume: bool = False,
        export: Path | None = None,
        init_vae: Path | None = None,
        init_transformer: Path | None = None,
        fresh_text_encoder: bool = False,
        progress: Callable[[str], None] = print,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.export = export
        self.init_vae = init_vae
        self.init_transformer = init_transformer
        self.fresh_text_encoder = fresh_text_encoder
        self.progress = progress
        config_path = self.run_dir / "train_config.json"
        if config_path.exists():
            if not resume:
                raise FileExistsError(f"{self.run_dir} already holds a training run; pass resume=True (--resume)")
            saved = json.loads(config_path.read_text())
            model: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in saved["model"].items()}
            saved["model"] = ModelConfig(**model)
            base = TrainConfig(**saved)
            # A resumed run may only change how long it trains and how often it saves.
            if config is not None:
                base = TrainConfig(
                    **{
                        **asdict(base),
                        "model": base.model,
                        "steps": config.steps,
                        "checkpoint_every": config.checkpoint_every,
                        "log_every": config.log_every,
                    }
                )
            self.config = base
        else:
            self.config = config or TrainConfig()
            self.run_dir.mkdir(parents=True, exist_ok=True)
            config_path.write_text(json.dumps(self.config.to_json(), indent=2))
        self.pipe = build_pipeline(self.config.model, seed=self.config.seed)
        # Where the position tables start (weights loaded later, from a checkpoint or --init-transformer, win).
        embedding = self.pipe.transformer.patch_embedding
        assert isinstance(embedding, PositionedPatchEmbedding)
        embedding.sinusoidal_(self.config.position_amplitude)

    # -- stage 1 -------------------------------------------------------------------------------------------

    def train_vae(self) -> None:
        cfg, vae = self.config, self.pipe.vae
        path = self.run_dir / "vae.pt"
        opt = torch.optim.AdamW(vae.parameters(), lr=cfg.vae_lr, weight_decay=0.0)
        total = cfg.vae_image_steps + cfg.vae_steps
        if self.init_vae is not None and not path.exists():
            # A VAE trained elsewhere (a committed warm start, or another run): take its weights instead of the
            # single-frame stage; the clip stage still runs its `vae_steps` (0 skips it) on top.
            trained = AutoencoderKLWan.from_pretrained(self.init_vae, torch_dtype=torch.float32)
            if decoder_width(trained) != decoder_width(vae):  # a narrower decoder: widen it, then train it
                gen = _torch_gen(cfg.seed, 5, 0)
                trained = widen_decoder(trained, decoder_width(vae), generator=gen)
            widen_latents(trained, vae)
            _save({"step": cfg.vae_image_steps, "vae": vae.state_dict(), "opt": opt.state_dict()}, path)
            self._log({"stage": "vae", "init_from": str(self.init_vae), "step": cfg.vae_image_steps})

        def loss_at(step: int) -> tuple[torch.Tensor, dict[str, float]]:
            x, weight = vae_batch(cfg, step)
            torch.manual_seed(cfg.seed * 1_000_003 + step)  # the posterior sample
            posterior = vae.encode(x).latent_dist
            recon = reconstruction_loss(vae.decode(posterior.sample()).sample, x, weight)
            kl = posterior.kl().mean()
            return recon + cfg.kl_weight * kl, {"recon": recon.item(), "kl": kl.item()}

        self._fit_autoencoder("vae", path, opt, list(vae.parameters()), total, cfg.vae_lr, loss_at)

    def train_decoder(self) -> None:
        """Stage 1b: ``decoder_steps`` on the decoder (and post_quant_conv) alone; the encoder stays as it is."""
        cfg, vae = self.config, self.pipe.vae
        path = self.run_dir / "decoder.pt"
        if cfg.decoder_steps <= 0:
            return
        trained = [*vae.decoder.parameters(), *vae.post_quant_conv.parameters()]
        opt = torch.optim.AdamW(trained, lr=cfg.decoder_lr, weight_decay=0.0)

        def loss_at(step: int) -> tuple[torch.Tensor, dict[str, float]]:
            x, weight = vae_batch(cfg, step, decoder=True)
            with torch.no_grad():
                torch.manual_seed(cfg.seed * 1_000_003 + step)  # the posterior sample
                z = vae.encode(x).latent_dist.sample()
            loss = reconstruction_loss(vae.decode(z).sample, x, weight)
            return loss, {"recon": loss.item()}

        self._fit_autoencoder("decoder", path, opt, trained, cfg.decoder_steps, cfg.decoder_lr, loss_at)

    def _fit_autoencoder(
        self,
        stage: str,
        path: Path,
        opt: torch.optim.Optimizer,
        params: list[torch.nn.Parameter],
        total: int,
        peak_lr: float,
        loss_at: Callable[[int], tuple[torch.Tensor, dict[str, float]]],
    ) -> None:
        """The loop both VAE stages run, from the checkpoint at ``path`` (if any) to ``total``: cosine rate,
        clipped gradients, logged means of what ``loss_at`` reports, checkpoints, and the finished VAE exported to
        ``<run>/vae`` (diffusers layout, safetensors: ``--init-vae`` for later runs)."""
        cfg, vae = self.config, self.pipe.vae
        step = 0
        if path.exists():
            state = _load(path)
            vae.load_state_dict(state["vae"])
            opt.load_state_dict(state["opt"])
            step = state["step"]
        if step >= total:  # finished by an earlier run: export only what is missing (stage 1b may have written it)
            vae.eval()
            if not (self.run_dir / "vae" / "config.json").exists():
                vae.save_pretrained(self.run_dir / "vae", safe_serialization=True)
            return
        vae.train()
        started, start_step, window = time.perf_counter(), step, []
        while step < total:
            for group in opt.param_groups:
                group["lr"] = _cosine_lr(peak_lr, step, total)
            loss, logged = loss_at(step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            step += 1
            window.append(logged)
            if step % cfg.log_every == 0 or step == total:
                rate = (step - start_step) / (time.perf_counter() - started)
                means = {key: float(np.mean([w[key] for w in window])) for key in window[0]}
                self._log({"stage": stage, "step": step, **means, "steps_per_s": rate})
                window = []
            if step % cfg.checkpoint_every == 0 or step == total:
                _save({"step": step, "vae": vae.state_dict(), "opt": opt.state_dict()}, path)
        vae.eval()
        vae.save_pretrained(self.run_dir / "vae", safe_serialization=True)

    # -- stage 2 -------------------------------------------------------------------------------------------

    def build_cache(self) -> dict[str, Any]:
        vae = self.pipe.vae
        path = self.run_dir / "cache.pt"
        specs, seeds = self._cache_scenes()
        if path.exists():
            cache = _load(path)
        else:
            latents = self._encode(specs, seeds, "cache")
            dims = (0, 2, 3, 4)
            cache = {
                "latents": latents,
                "mean": latents.mean(dim=dims).tolist(),
                "std": latents.std(dim=dims).clamp_min(1e-3).tolist(),
                "specs": [spec_to_json(s) for s in specs],
            }
            _save(cache, path)
        odds = self.config.swap_source_weights
        if self.config.shape_swap > 0 and (
            "swapped_latents" not in cache or cache.get("swap_source_weights", {}) != odds
        ):
            # Added to an existing cache in place: a continued run can reuse a cache built without them (or with
            # other swap odds, whose swapped scenes are redrawn).
            swapped = [swap_shape(spec, int(seed), odds) for spec, seed in zip(specs, seeds, strict=True)]
            cache["swapped_latents"] = self._encode(swapped, seeds, "swap cache")
            cache["swap_source_weights"] = dict(odds)
            _save(cache, path)
        set_latent_stats(vae, cache["mean"], cache["std"])
        # Object masks are cheap to re-render (a few ms a clip), so caches store only latents and specs.
        spatial, temporal = vae.config["scale_factor_spatial"], vae.config["scale_factor_temporal"]
        masks = [
            latent_mask(
                object_mask(spec, render(spec, NUM_FRAMES, SIZE, SIZE, seed=int(seed)), int(seed)), spatial, temporal
            )
            for spec, seed in zip(specs, seeds, strict=True)
        ]
        cache["masks"] = torch.from_numpy(np.stack(masks)).unsqueeze(1)
        return cache

    def _encode(self, specs: list[SceneSpec], seeds: np.ndarray, stage: str) -> torch.Tensor:
        """The VAE posterior means of the rendered scenes (render seed ``seeds[i]`` for ``specs[i]``)."""
        vae, chunks, started, chunk = self.pipe.vae, [], time.perf_counter(), 8
        vae.eval()
        with torch.no_grad():
            for i in range(0, len(specs), chunk):
                clips = np.stack(
                    [
                        render(s, NUM_FRAMES, SIZE, SIZE, seed=int(seeds[i + j]))
                        for j, s in enumerate(specs[i : i + chunk])
                    ]
                )
                chunks.append(vae.encode(clips_to_tensor(clips)).latent_dist.mode())
                if (i // chunk) % 25 == 0:
                    self._log({"stage": stage, "clips": i + len(clips), "s": time.perf_counter() - started})
        return torch.cat(chunks)

    def _cache_scenes(self) -> tuple[list[SceneSpec], np.ndarray]:
        """The cache's training scenes and their render seeds (a pure function of the run's seed)."""
        rng = _rng(self.config.seed, 2, 0)
        specs = [sample_spec(rng, "train") for _ in range(self.config.cache_size)]
        return specs, rng.integers(1 << 31, size=len(specs))

    # -- stage 3 -------------------------------------------------------------------------------------------

    def train_transformer(self, cache: dict[str, Any], max_seconds: float | None = None) -> int:
        cfg, pipe = self.config, self.pipe
        x0_all = normalize_latents(pipe.vae, cache["latents"].float())
        swapped_all = cache.get("swapped_latents")
        if swapped_all is not None:
            swapped_all = normalize_latents(pipe.vae, swapped_all.float())
        specs = [spec_from_json(s) for s in cache["specs"]]
        modules = torch.nn.ModuleDict({"transformer": pipe.transformer, "text_encoder": pipe.text_encoder})
        path = self.run_dir / "state.pt"
        if self.init_transformer is not None and not path.exists():
            # Continue from an exported pipeline (e.g. the shipped weights; its EMA weights, a fresh optimizer).
            # Only meaningful with the VAE those weights were trained on: the latents must be the same.
            folder = Path(self.init_transformer)
            load_transformer_weights(pipe.transformer, folder / "transformer")
            source = json.loads((folder / "transformer" / "config.json").read_text()).get("prediction", "velocity")
            if source != cfg.model.prediction:
                # The trunk's features carry over; the output head meant something else. Zero, it predicts the
                # mean latent (sample) or no motion (velocity) and learns from there.
                torch.nn.init.zeros_(pipe.transformer.proj_out.weight)
                torch.nn.init.zeros_(pipe.transformer.proj_out.bias)
            if not self.fresh_text_encoder:
                pipe.text_encoder.load_state_dict(
                    UMT5EncoderModel.from_pretrained(folder / "text_encoder", torch_dtype=torch.float32).state_dict()
                )
            self._log({"stage": "transformer", "init_from": str(folder), "text_encoder": cfg.text_encoder})
        pipe.text_encoder.requires_grad_(cfg.text_encoder == "joint")
        ema = copy.deepcopy(modules).requires_grad_(False)
        trained = [(name, p) for name, p in modules.named_parameters() if p.requires_grad]
        positions = [p for name, p in trained if name.endswith(POSITION_TABLES)]
        others = [p for name, p in trained if not name.endswith(POSITION_TABLES)]
        opt = torch.optim.AdamW(
            [
                {"params": others, "lr_scale": 1.0},
                {"params": positions, "lr_scale": cfg.position_lr_scale, "weight_decay": 0.0},
            ],
            lr=cfg.lr,
            betas=(0.9, 0.99),
            weight_decay=0.01,
        )
        step = 0
        if path.exists():
            state = _load(path)
            modules.load_state_dict(state["modules"])
            ema.load_state_dict(state["ema"])
            opt.load_state_dict(state["opt"])
            step = state["step"]
        modules.train()
        started, start_step, window = time.perf_counter(), step, []
        while step < cfg.steps:
            if max_seconds is not None and time.perf_counter() - started > max_seconds:
                break
            loss = self.flow_matching_loss(x0_all, specs, step, cache["masks"], swapped_all)
            for group in opt.param_groups:
                group["lr"] = transformer_lr(cfg, step) * group["lr_scale"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(modules.parameters(), 1.0)
            opt.step()
            step += 1
            decay = min(cfg.ema_decay, (1 + step) / (10 + step))
            with torch.no_grad():
                for e, p in zip(ema.parameters(), modules.parameters(), strict=True):
                    e.lerp_(p, 1 - decay)
            window.append(loss.item())
            if step % cfg.log_every == 0:
                rate = (step - start_step) * cfg.batch / (time.perf_counter() - started)
                self._log({"stage": "transformer", "step": step, "loss": float(np.mean(window)), "samples_per_s": rate})
                window = []
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                self._checkpoint(step, modules, ema, opt)
        if step % cfg.checkpoint_every and step != cfg.steps:
            self._checkpoint(step, modules, ema, opt)
        return step

    def flow_matching_loss(
        self,
        x0_all: torch.Tensor,
        specs: list[SceneSpec],
        step: int,
        masks: torch.Tensor | None = None,
        swapped_all: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The loss of training step ``step`` (its batch, captions and noise depend only on seed and step)."""
        cfg, pipe = self.config, self.pipe
        rng, gen = _rng(cfg.seed, 3, step), _torch_gen(cfg.seed, 3, step)
        idx = self.pick_batch(specs, rng)
        prompts = [self._training_caption(specs[i], rng) for i in idx]
        x0 = x0_all[torch.from_numpy(idx)]
        u = torch.rand(cfg.batch, generator=gen)
        sigma = FLOW_SHIFT * u / (1 + (FLOW_SHIFT - 1) * u)
        noise = torch.randn(x0.shape, generator=gen)
        s = sigma.view(-1, 1, 1, 1, 1)
        source = x0
        if swapped_all is not None and cfg.shape_swap > 0:
            swap = torch.from_numpy(rng.random(cfg.batch) < cfg.shape_swap) & (sigma >= cfg.shape_swap_min_sigma)
            source = torch.where(swap.view(-1, 1, 1, 1, 1), swapped_all[torch.from_numpy(idx)], x0)
        xt = (1 - s) * source + s * noise
        embeds = encode_prompts(pipe, prompts)
        # The velocity that lands on the true x0 from x_t, (x_t - x0) / s: noise - x0 unless drawn from a swap.
        target = noise - x0 + (1 - s) / s * (source - x0)
        if cfg.rollout > 0:
            xt, target = self._roll_out(xt, target, x0, source, noise, sigma, embeds, step)
        pred = pipe.transformer(xt, sigma * 1000, embeds, return_dict=False)[0]
        error = (pred - target).square()
        if cfg.model.prediction == "sample":
            error = error * (sigma / cfg.loss_sigma_floor).clamp(max=1.0).square().view(-1, 1, 1, 1, 1)
        if cfg.detail_weight > 0:
            error = error * (1.0 + cfg.detail_weight * latent_detail(x0))
        if masks is None or cfg.object_weight == 0:
            return error.mean()
        weight = 1.0 + cfg.object_weight * masks[torch.from_numpy(idx)].float()
        return (weight * error).sum() / (weight.sum() * x0.shape[1])

    def _roll_out(
        self,
        xt: torch.Tensor,
        target: torch.Tensor,
        x0: torch.Tensor,
        source: torch.Tensor,
        noise: torch.Tensor,
        sigma: torch.Tensor,
        embeds: torch.Tensor,
        step: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x_t and target with TrainConfig.rollout's samples replaced: one Euler step of sampling from a noisier
        x_hi of the same scene and noise to sigma, with the model's own velocity there; the target is the
        velocity from that x_t to the true x0. Draws come from their own stream: other runs' batches stay."""
        cfg = self.config
        gen = _torch_gen(cfg.seed, 4, step)
        chosen = (torch.rand(cfg.batch, generator=gen) < cfg.rollout) & (sigma >= cfg.rollout_min_sigma)
        higher = sigma + (1 - sigma) * torch.rand(cfg.batch, generator=gen)
        idx = chosen.nonzero().squeeze(1)
        if len(idx) == 0:
            return xt, target
        s = sigma[idx].view(-1, 1, 1, 1, 1)
        s_hi = higher[idx].view(-1, 1, 1, 1, 1)
        x_hi = (1 - s_hi) * source[idx] + s_hi * noise[idx]
        with torch.no_grad():
            velocity = self.pipe.transformer(x_hi, higher[idx] * 1000, embeds[idx], return_dict=False)[0]
        rolled = x_hi + (s - s_hi) * velocity
        xt, target = xt.clone(), target.clone()
        xt[idx] = rolled
        target[idx] = (rolled - x0[idx]) / s
        return xt, target

    def pick_batch(self, specs: list[SceneSpec], rng: np.random.Generator) -> np.ndarray:
        """Indices of the cached scenes in one batch, drawn with replacement (weighted by TrainConfig.shape_weights)."""
        if not self.config.shape_weights:  # the draw of every run before shape_weights: their batches stay the same
            return rng.integers(len(specs), size=self.config.batch)
        # Derived on every call (0.5 ms for 4,000 scenes against ~400 ms a step): nothing to keep in step with specs.
        odds = shape_odds(self.config.shape_weights, [s.shape for s in specs])
        return rng.choice(len(specs), size=self.config.batch, p=odds)

    def _training_caption(self, spec: SceneSpec, rng: np.random.Generator) -> str:
        """The empty prompt (caption_dropout), the canonical caption (canonical_captions), or a random one."""
        draw = rng.random()
        if draw < self.config.caption_dropout:
            return ""
        if draw < self.config.caption_dropout + self.config.canonical_captions:
            return caption(spec)
        return caption(spec, rng)

    def _checkpoint(
        self, step: int, modules: torch.nn.Module, ema: torch.nn.Module, opt: torch.optim.Optimizer
    ) -> None:
        _save(
            {"step": step, "modules": modules.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict()},
            self.run_dir / "state.pt",
        )
        self.export_pipeline(ema, self.run_dir / "pipeline")
        if self.export is not None:
            self.export_pipeline(ema, self.export)
        self._log({"stage": "checkpoint", "step": step})

    def export_pipeline(self, ema: torch.nn.Module, folder: Path) -> None:
        """Save the pipeline with the EMA weights (diffusers layout, safetensors)."""
        pipe = self.pipe
        export = WanPipeline(
            tokenizer=pipe.tokenizer,
            text_encoder=ema["text_encoder"],  # type: ignore[index]
            vae=pipe.vae,
            scheduler=pipe.scheduler,
            transformer=ema["transformer"],  # type: ignore[index]
        )
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        export.save_pretrained(tmp, safe_serialization=True)
        shutil.rmtree(folder, ignore_errors=True)
        tmp.replace(folder)

    # -- all -----------------------------------------------------------------------------------------------

    def run(self, max_seconds: float | None = None) -> int:
        self.train_vae()
        self.train_decoder()
        cache = self.build_cache()
        return self.train_transformer(cache, max_seconds=max_seconds)

    def _log(self, record: dict[str, Any]) -> None:
        record = {"time": round(time.time(), 1), **record}
        with open(self.run_dir / "log.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        self.progress(json.dumps(record))
