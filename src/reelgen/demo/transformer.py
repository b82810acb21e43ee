"""reelgen-demo's transformer: Wan 2.1's ``WanTransformer3DModel`` plus a learned absolute position per token.

Wan places tokens only through RoPE in self-attention, which tells a token where others are *relative* to it,
never where it is: not which frame it is in, nor how far from the frame's edge. A 14B Wan infers that from
content; the 1.4M-parameter demo model did not (measured in session 5: at a fixed seed, "moves to the left" and
"moves to the right" gave the same object track to two decimals, and every track drifted down whatever the
words). In the demo world where the object is at frame ``t`` follows from the words and ``t`` (paths are centred
on the frame), so with its own frame, row and column in its embedding each token can learn "am I on the path
at this time" directly, the way the model already learned colour and background.

The addition is one table per axis added to the patch embedding's output (frames x dim + rows x dim + cols x
dim, about 3,000 parameters). Everything else is the diffusers class unchanged, so the pipeline, the engine,
LoRA, offload and compile treat it as any Wan transformer; ``WanPipeline.from_pretrained`` finds the class
through ``model_index.json`` (``["reelgen.demo.transformer", "DemoWanTransformer3DModel"]``, written by
``save_pretrained``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from diffusers.configuration_utils import register_to_config
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.transformers.transformer_wan import WanTimeTextImageEmbedding, WanTransformer3DModel
from torch import nn

__all__ = ["DemoWanTransformer3DModel", "ModelMixin", "PositionedPatchEmbedding"]  # ModelMixin: see below

PREDICTIONS = ("velocity", "sample")
# The smallest noise level "sample" prediction divides by: the sampler's last step (sigma 0) would divide by zero,
# and no step of a 20-step shift-3 schedule comes near it (its smallest non-zero sigma is about 0.14).
SIGMA_FLOOR = 1e-3


class PositionedPatchEmbedding(nn.Conv3d):
    """Wan's patch embedding (a Conv3d with stride = kernel = patch) followed by a learned vector per latent
    frame, row and column of the token grid. A subclass of Conv3d, so the weights keep Wan's names."""

    def __init__(
        self, in_channels: int, out_channels: int, patch_size: tuple[int, int, int], grid: tuple[int, int, int]
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size=patch_size, stride=patch_size)
        frames, rows, cols = grid
        # Zero at first: a Wan transformer's weights load into this one and compute exactly what they did.
        self.frame_embed = nn.Parameter(torch.zeros(frames, out_channels))
        self.row_embed = nn.Parameter(torch.zeros(rows, out_channels))
        self.col_embed = nn.Parameter(torch.zeros(cols, out_channels))

    @torch.no_grad()
    def sinusoidal_(self, amplitude: float) -> None:
        """Fill the tables with a fixed sinusoidal code (frames in the first half of the channels, rows and
        columns a quarter each; periods from 2 positions to 4x the axis; zero mean over each axis, so no table adds
        a constant to every token). Training starts here rather than at zero: at zero neither the positions nor
        the motion words are worth learning before the other is (on centred paths the object's average place at
        frame t is the middle for every t, whatever the words say), and the model stayed at that saddle."""
        dim = self.frame_embed.shape[1]
        spans = (
            (self.frame_embed, 0, dim // 2),
            (self.row_embed, dim // 2, 3 * dim // 4),
            (self.col_embed, 3 * dim // 4, dim),
        )
        for table, lo, hi in spans:
            count, pairs = table.shape[0], (hi - lo) // 2
            periods = torch.logspace(math.log10(2.0), math.log10(4.0 * count), pairs)
            angle = 2 * math.pi * torch.arange(count, dtype=torch.float32)[:, None] / periods
            code = torch.cat([angle.sin(), angle.cos()], dim=1)
            table.zero_()
            table[:, lo : lo + 2 * pairs] = amplitude * (code - code.mean(dim=0, keepdim=True))

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        out = super().forward(input)  # (B, C, T, H, W) tokens
        t, h, w = out.shape[2:]
        pos = grid_positions(self.frame_embed, self.row_embed, self.col_embed, (t, h, w))  # (T, H, W, C)
        return out + pos.permute(3, 0, 1, 2).to(out.dtype)


def grid_positions(
    frames: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, tokens: tuple[int, int, int]
) -> torch.Tensor:
    """The (t, h, w, dim) position vectors of a t x h x w token grid from one learned table per axis (each
    position is its frame's + its row's + its column's vector). A grid larger than the tables is an error."""
    t, h, w = tokens
    grid = (frames.shape[0], rows.shape[0], cols.shape[0])
    if t > grid[0] or h > grid[1] or w > grid[2]:
        raise ValueError(f"a {t}x{h}x{w} token grid is larger than the positions this model learned, {grid}")
    return frames[:t, None, None] + rows[None, :h, None] + cols[None, None, :w]


class DemoConditioning(WanTimeTextImageEmbedding):
    """Wan's time/text embedder with two additions to the time embedding, which sets every block's shift,
    scale and gate and the output's (both zero-initialised: weights trained without them load and compute
    exactly what they did):

    - ``pooled_text``: the prompt's mean token embedding. Wan reads the prompt only through cross-attention,
      where each token's query, at high noise mostly its patch of noise, decides which words it hears.
    - ``grid`` (frames, rows, cols): a learned vector per token position, so the modulation is per token (Wan
      2.2 TI2V's per-token path). In the patch embedding (``PositionedPatchEmbedding``) a position is added to
      the token's patch of noise, which at sigma 1 is three times its norm: no token can read where it is.
      Here the position arrives noise-free, next to the words, in every block.

    Measured on session 5-6 weights at sigma 1 (only the words to go on), the predicted clean clip for "moves
    to the right" and "moves to the left" was the same centred blob in every frame, though the data's mean
    paths run from x 0.36 to 0.68 and back; 300 steps trained on nothing but that case at sigma 1 barely moved
    it. What a path needs is the product "which way" x "which frame, where", and the modulation computes it
    from the two side by side."""

    def __init__(
        self,
        dim: int,
        time_freq_dim: int,
        time_proj_dim: int,
        text_embed_dim: int,
        *,
        pooled_text: bool,
        grid: tuple[int, int, int] | None,
    ) -> None:
        super().__init__(dim, time_freq_dim, time_proj_dim, text_embed_dim)
        self.pooled_embedder = nn.Linear(text_embed_dim, dim) if pooled_text else None
        if self.pooled_embedder is not None:
            nn.init.zeros_(self.pooled_embedder.weight)
            nn.init.zeros_(self.pooled_embedder.bias)
        self.grid = grid
        if grid is not None:
            self.frame_embed = nn.Parameter(torch.zeros(grid[0], dim))
            self.row_embed = nn.Parameter(torch.zeros(grid[1], dim))
            self.col_embed = nn.Parameter(torch.zeros(grid[2], dim))
        # The token grid of the current call (frames, rows, cols), set by the transformer before each forward.
        self.tokens: tuple[int, int, int] | None = None

    def forward(
        self,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        encoder_hidden_states_image: torch.Tensor | None = None,
        timestep_seq_len: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        temb, _, text, image = super().forward(
            timestep, encoder_hidden_states, encoder_hidden_states_image, timestep_seq_len
        )
        if self.pooled_embedder is not None:
            # WanPipeline zero-fills the positions past the prompt: average over the prompt's own tokens.
            present = (encoder_hidden_states.abs().sum(dim=-1, keepdim=True) > 0).to(encoder_hidden_states.dtype)
            pooled = (encoder_hidden_states * present).sum(dim=1) / present.sum(dim=1).clamp_min(1.0)
            added = self.pooled_embedder(pooled).type_as(temb)
            temb = temb + (added if temb.ndim == 2 else added[:, None])
        if self.grid is not None and temb.ndim == 3:
            assert self.tokens is not None
            pos = grid_positions(self.frame_embed, self.row_embed, self.col_embed, self.tokens)
            temb = temb + pos.reshape(1, math.prod(self.tokens), -1).type_as(temb)
        return temb, self.time_proj(self.act_fn(temb)), text, image


class DemoWanTransformer3DModel(WanTransformer3DModel):
    """``WanTransformer3DModel`` whose patch embedding adds a learned absolute position (``position_grid``:
    the largest token grid, frames x rows x cols, it has positions for).

    ``prediction="sample"``: the network's output is the clean latent x0, and ``forward`` returns the velocity the
    flow-matching sampler expects, ``(x_t - x0) / sigma`` (sigma = timestep / 1000). Wan predicts the velocity
    ``noise - x0`` directly, which needs every token to carry its patch of noise from input to output; here a
    token is 128 channels wide and its patch 256 latent values (16 channels x 4 x 4), so it cannot: measured on
    session 4's weights, 85-88% of the remaining error at sigma 0.2-0.8 lay outside the output projection's span
    and the residual stream was spent carrying noise. The clean latent is flat backgrounds and one shape, which
    fits. ``"velocity"`` is Wan's own parametrization (the default, so older demo weights load unchanged).
    """

    @register_to_config
    def __init__(
        self,
        patch_size: tuple[int, ...] = (1, 4, 4),
        num_attention_heads: int = 4,
        attention_head_dim: int = 32,
        in_channels: int = 16,
        out_channels: int = 16,
        text_dim: int = 64,
        freq_dim: int = 64,
        ffn_dim: int = 256,
        num_layers: int = 6,
        cross_attn_norm: bool = True,
        qk_norm: str | None = "rms_norm_across_heads",
        eps: float = 1e-6,
        image_dim: int | None = None,
        added_kv_proj_dim: int | None = None,
        rope_max_seq_len: int = 64,
        pos_embed_seq_len: int | None = None,
        position_grid: tuple[int, int, int] = (17, 4, 4),
        prediction: str = "velocity",
        pooled_text: bool = False,
        position_modulation: bool = False,
    ) -> None:
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, not {prediction!r}")
        super().__init__(
            patch_size=patch_size,
            num_attention_heads=num_attention_heads,
            attention_head_dim=attention_head_dim,
            in_channels=in_channels,
            out_channels=out_channels,
            text_dim=text_dim,
            freq_dim=freq_dim,
            ffn_dim=ffn_dim,
            num_layers=num_layers,
            cross_attn_norm=cross_attn_norm,
            qk_norm=qk_norm,
            eps=eps,
            image_dim=image_dim,
            added_kv_proj_dim=added_kv_proj_dim,
            rope_max_seq_len=rope_max_seq_len,
            pos_embed_seq_len=pos_embed_seq_len,
        )
        p_t, p_h, p_w = patch_size
        grid = (int(position_grid[0]), int(position_grid[1]), int(position_grid[2]))
        self.patch_embedding = PositionedPatchEmbedding(
            in_channels, num_attention_heads * attention_head_dim, (p_t, p_h, p_w), grid
        )
        if pooled_text or position_modulation:
            inner = num_attention_heads * attention_head_dim
            self.condition_embedder = DemoConditioning(
                inner,
                freq_dim,
                inner * 6,
                text_dim,
                pooled_text=pooled_text,
                grid=grid if position_modulation else None,
            )

    def forward(
        self,
        hidden_states: torch.Tensor,
        timestep: torch.LongTensor,
        encoder_hidden_states: torch.Tensor,
        encoder_hidden_states_image: torch.Tensor | None = None,
        return_dict: bool = True,
        attention_kwargs: dict[str, Any] | None = None,
    ) -> Any:
        embedder = self.condition_embedder
        if isinstance(embedder, DemoConditioning) and embedder.grid is not None and timestep.ndim == 1:
            # One noise level for every token, passed per token so the modulation can differ by position.
            p_t, p_h, p_w = self.config["patch_size"]
            _, _, frames, height, width = hidden_states.shape
            embedder.tokens = (frames // p_t, height // p_h, width // p_w)
            per_token = timestep[:, None].expand(-1, math.prod(embedder.tokens))
        else:
            per_token = timestep
        out = super().forward(
            hidden_states,
            per_token,
            encoder_hidden_states,
            encoder_hidden_states_image=encoder_hidden_states_image,
            return_dict=False,
            attention_kwargs=attention_kwargs,
        )[0]
        if self.config["prediction"] == "sample":
            sigma = (timestep.float() / 1000).clamp_min(SIGMA_FLOOR).view(-1, *([1] * (out.ndim - 1)))
            out = ((hidden_states.float() - out.float()) / sigma).to(out.dtype)
        if not return_dict:
            return (out,)
        return Transformer2DModelOutput(sample=out)
