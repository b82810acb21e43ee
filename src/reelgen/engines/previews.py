"""Cheap step previews shared by every family: a linear map from diffusion latents to RGB, fitted once at load
time against the model's own VAE, then applied to one latent frame per step (no VAE decode per step)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

PREVIEW_LONG_SIDE = 256

# A picture made on demand: the engine offers one every step, the sink renders only the ones it shows.
Preview = Callable[[], np.ndarray]


@torch.no_grad()
def fit_rgb_projection(noise_frame: torch.Tensor, decoded: torch.Tensor, scale: int) -> torch.Tensor:
    """Least-squares (channels + 1, 3) map from latents (plus a bias) to RGB in [0, 1].

    `noise_frame` is the (C, h, w) latent frame that was decoded; `decoded` is the VAE's (1, 3, H, W) output for
    it in [-1, 1]. Each latent pixel is matched with the RGB averaged over its `scale` x `scale` footprint."""
    channels, h, w = noise_frame.shape
    rgb = F.avg_pool2d((decoded.float() / 2 + 0.5).clamp(0, 1), kernel_size=scale)
    inputs = torch.cat([noise_frame.cpu().reshape(channels, -1), torch.ones(1, h * w)]).T.double()
    targets = rgb[0].reshape(3, -1).T.cpu().double()
    return torch.linalg.lstsq(inputs, targets).solution.float().to(decoded.device)


@torch.no_grad()
def project_to_rgb(frame: torch.Tensor, projection: torch.Tensor, max_upscale: int) -> np.ndarray:
    """(C, h, w) latents -> (h', w', 3) uint8 through the fitted map, upsampled (at most `max_upscale` times)
    towards PREVIEW_LONG_SIDE so the picture is visible."""
    channels, h, w = frame.shape
    flat = torch.cat([frame.float().reshape(channels, -1), frame.new_ones(1, h * w, dtype=torch.float32)])
    rgb = (projection.T @ flat).reshape(1, 3, h, w)
    factor = max(1, min(max_upscale, PREVIEW_LONG_SIDE // max(h, w)))
    if factor > 1:
        rgb = F.interpolate(rgb, scale_factor=factor, mode="bilinear", align_corners=False)
    return (rgb[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def middle_frame_preview(
    latents: torch.Tensor, projection: torch.Tensor | None, max_upscale: int, time_axis: int = 2
) -> Preview:
    """A lazy preview of the first video's middle frame through the fitted map, no VAE. Only that latent frame
    is copied now (so offering a preview every step is free); the sink calls the result when it wants a picture.
    ``time_axis``: where frames are in ``latents`` (2 for (B, C, F, H, W), 1 for CogVideoX's (B, F, C, H, W))."""
    assert projection is not None
    first = latents[0]
    middle = first.select(time_axis - 1, first.shape[time_axis - 1] // 2).detach().clone()

    def render() -> np.ndarray:
        return project_to_rgb(middle, projection, max_upscale=max_upscale)

    return render
