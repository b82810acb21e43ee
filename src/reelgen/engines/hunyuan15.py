"""HunyuanVideo 1.5 (Tencent) text-to-video through diffusers' HunyuanVideo15Pipeline, and image-to-video
through HunyuanVideo15ImageToVideoPipeline.

Reading order: `load_hunyuan15_pipeline` and `create_engine` (how a checkpoint is found and loaded), then
`HunyuanVideo15Engine.run`, which calls the real pipeline with `output_type="latent"`, reports every step to the
sink (with a cheap latent->RGB preview), and returns a VideoOutput whose chunks come from the pipeline's own decode
arithmetic (divide by the VAE's scaling factor, one VAE call), run when the worker asks for the first chunk.

Two things differ from the other families:
- The pipeline takes no `callback_on_step_end`, so steps are reported by wrapping its scheduler's `step` for the
  length of one call (`_reported_steps`): the wrapper runs the real step, then hands the new latents to the same
  callback the other pipelines call. Progress, previews and cancelling work alike (JobCancelled raised by the sink
  propagates out of the pipeline), and the wrapper is removed however the call ends.
- Guidance is real classifier-free guidance (a conditional and an unconditional pass per step, so a negative
  prompt is used), run by the pipeline's `guider`; the call itself takes no guidance scale. Each job sets the
  guider's scale for its call and puts the checkpoint's back afterwards (`_guidance_scale`).

The image-to-video checkpoints are separate models (same transformer architecture, other weights, plus a SigLIP
image encoder whose tokens join the text's): they load as HunyuanVideo15ImageToVideoPipeline
(`create_engine(image_to_video=True)`) and need `request.input_image`. That pipeline takes no size: it makes the
size bucket (at the checkpoint's `target_size`) nearest the image's aspect ratio, after centre-cropping the image to
it. So the engine accepts only sizes that are their own aspect ratio's bucket (`_check_bucket`), crops the image to
the requested size with the pipeline's own resize (`_image_at`), and the pipeline then makes exactly that size.

diffusers 0.42 has no LoRA loader for this pipeline (huggingface/diffusers#14420): a job with a LoRA is refused.
Nor does it describe this transformer's blocks to its step caches, so the engine does (`_describe_blocks`), and the
`balanced` and `fast` presets work as for HunyuanVideo.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch

# Imported from their modules, not `from diffusers import ...`, so type checkers see the real classes.
from diffusers.hooks._helpers import TransformerBlockMetadata, TransformerBlockRegistry
from diffusers.models.transformers.transformer_hunyuan_video15 import HunyuanVideo15TransformerBlock
from diffusers.pipelines.hunyuan_video1_5.pipeline_hunyuan_video1_5 import HunyuanVideo15Pipeline
from diffusers.pipelines.hunyuan_video1_5.pipeline_hunyuan_video1_5_image2video import (
    HunyuanVideo15ImageToVideoPipeline,
)

from reelgen.domain.errors import InvalidParams
from reelgen.domain.models import ModelSpec
from reelgen.engines.alignment import align_weights
from reelgen.engines.base import ProgressSink, StageRequest, VideoOutput
from reelgen.engines.diffusers_engine import (
    DTYPE_KWARG,
    DiffusersEngine,
    Preview,
    StepCallback,
    default_device,
    resolve_dtype,
    variation_generators,
)
from reelgen.engines.hunyuan import decode_scaled, fit_scaled_preview_projection
from reelgen.engines.memory import ActivationProfile
from reelgen.engines.previews import middle_frame_preview
from reelgen.engines.weights import require_weights

AnyHunyuan15Pipeline = HunyuanVideo15Pipeline | HunyuanVideo15ImageToVideoPipeline


def load_hunyuan15_pipeline(source: str | Path, *, dtype: torch.dtype, device: str) -> HunyuanVideo15Pipeline:
    """Load a HunyuanVideo 1.5 pipeline from a Hub repo id or a local diffusers folder (model_index.json), every
    component in `dtype`, as diffusers' and Tencent's examples load it. Honours HF_HUB_OFFLINE."""
    pipe = HunyuanVideo15Pipeline.from_pretrained(source, **{DTYPE_KWARG: dtype})
    return align_weights(pipe.to(device))


def load_hunyuan15_i2v_pipeline(
    source: str | Path, *, dtype: torch.dtype, device: str
) -> HunyuanVideo15ImageToVideoPipeline:
    """`load_hunyuan15_pipeline` for the image-to-video checkpoints (with their SigLIP image encoder)."""
    pipe = HunyuanVideo15ImageToVideoPipeline.from_pretrained(source, **{DTYPE_KWARG: dtype})
    return align_weights(pipe.to(device))


def create_engine(
    spec: ModelSpec,
    device: str | None = None,
    *,
    source: str,
    dtype: str | None = None,
    image_to_video: bool = False,
) -> HunyuanVideo15Engine:
    """Registry factory: `register(spec, "reelgen.engines.hunyuan15:create_engine", options={"source": "..."})`;
    add `"image_to_video": True` for the I2V checkpoints.

    Fails here, before any job work, when the weights are missing and cannot be downloaded (HF_HUB_OFFLINE)."""
    require_weights(source)
    device = device or default_device()
    torch_dtype = resolve_dtype(dtype, device)
    loader = load_hunyuan15_i2v_pipeline if image_to_video else load_hunyuan15_pipeline
    return HunyuanVideo15Engine(
        spec,
        # Loaded on the CPU: the engine places it on `device` as its memory plan says (whole, or offloaded).
        lambda: loader(source, dtype=torch_dtype, device="cpu"),
        device,
    )


class HunyuanVideo15Engine(DiffusersEngine[AnyHunyuan15Pipeline]):
    """One HunyuanVideo 1.5 pipeline (engines/diffusers_engine.py: residency, memory plan, reported denoising): text
    to video, or image to video when the loader returns HunyuanVideo15ImageToVideoPipeline (a checkpoint does one
    or the other)."""

    # -- what differs from other families ----------------------------------------------------------------

    def _profile(self, pipe: AnyHunyuan15Pipeline) -> ActivationProfile:
        # HunyuanVideo's costs at this checkpoint's 16x VAE and 1x1 patches (the same 16 px per token); the
        # guider runs the conditional and unconditional passes one after the other, so one batch at a time.
        return self._transformer_profile(
            "hunyuan",
            pipe,
            spatial=pipe.vae_scale_factor_spatial,
            temporal=pipe.vae_scale_factor_temporal,
            patch=pipe.transformer.config.patch_size,
        )

    def _fit_preview(self, pipe: AnyHunyuan15Pipeline) -> torch.Tensor:
        return fit_scaled_preview_projection(pipe)

    def _on_load(self, pipe: AnyHunyuan15Pipeline) -> None:
        _describe_blocks()

    # -- one job -----------------------------------------------------------------------------------------

    batches_variations = True

    def run(self, request: StageRequest, sink: ProgressSink) -> VideoOutput:
        return self._one_variation(request, sink)

    def run_batch(self, request: StageRequest, sink: ProgressSink) -> list[VideoOutput]:
        """`request.count` variations in one denoising pass, each with its own noise."""
        self.load()
        self._check_request(self.pipe, request)
        self._plan_memory(request)  # may reload the pipeline with more offloading
        pipe = self.pipe
        params = request.params
        # Text to video: the size. Image to video: the image at that size, from which the pipeline takes it.
        shape: dict[str, Any]
        if isinstance(pipe, HunyuanVideo15ImageToVideoPipeline):
            assert request.input_image is not None
            shape = {"image": _image_at(pipe, request.input_image, params.size.width, params.size.height)}
        else:
            shape = {"height": params.size.height, "width": params.size.width}

        def call(on_step_end: StepCallback) -> torch.Tensor:
            with _guidance_scale(pipe, params.guidance_scale), _reported_steps(pipe, on_step_end):
                return pipe(
                    **shape,
                    # diffusers 0.42's num_videos_per_prompt leaves the text attention mask at batch 1 (the
                    # transformer fails): a batch is the prompt once per variation.
                    prompt=[params.prompt] * request.count,
                    negative_prompt=[params.negative_prompt] * request.count if params.negative_prompt else None,
                    num_frames=params.num_frames,
                    num_inference_steps=params.steps,
                    generator=variation_generators(request),
                    output_type="latent",
                    return_dict=False,
                )[0]

        latents, stats = self._denoise(request, sink, call, self._preview)
        generation = self._generation
        return self._batch_outputs(request, stats, lambda i: self._decode(latents[i : i + 1], generation))

    def _check_request(self, pipe: AnyHunyuan15Pipeline, request: StageRequest) -> None:
        """Refuse what the pipeline would reject late, silently round or cannot do."""
        image_to_video = isinstance(pipe, HunyuanVideo15ImageToVideoPipeline)
        self._check_stage(request, takes_image=image_to_video)
        if image_to_video and request.input_image is None:
            raise InvalidParams(
                f"model {self.spec.id} animates an image: send input_reference", param="input_reference"
            )
        if request.lora is not None:
            raise InvalidParams(
                f"model {self.spec.id} takes no LoRA: diffusers has no LoRA loader for HunyuanVideo 1.5 yet",
                param="lora",
            )
        self._check_grid(
            request,
            multiple=pipe.vae_scale_factor_spatial * pipe.transformer.config.patch_size,
            temporal=pipe.vae_scale_factor_temporal,
        )
        if isinstance(pipe, HunyuanVideo15ImageToVideoPipeline):
            _check_bucket(pipe, request, self.spec.id)

    # -- previews and decoding ---------------------------------------------------------------------------

    def _preview(self, latents: torch.Tensor) -> Preview:
        return middle_frame_preview(latents, self._preview_projection, self.pipe.vae_scale_factor_spatial)

    def _decode(self, latents: torch.Tensor, generation: int) -> np.ndarray:
        self._check_current(generation)
        return decode_scaled(self.pipe.vae, latents)


def _check_bucket(pipe: HunyuanVideo15ImageToVideoPipeline, request: StageRequest, model_id: str) -> None:
    """The image-to-video pipeline makes the size bucket nearest the image's aspect ratio: a requested size that is
    not the bucket of its own aspect ratio could not come out (the pipeline would make the bucket instead)."""
    size = request.params.size
    bucket_height, bucket_width = pipe.video_processor.calculate_default_height_width(
        height=size.height, width=size.width, target_size=pipe.target_size
    )
    if (bucket_width, bucket_height) != (size.width, size.height):
        raise InvalidParams(
            f"model {model_id} makes {bucket_width}x{bucket_height} for an image of this shape, not {size}",
            param="size",
        )


def _image_at(pipe: HunyuanVideo15ImageToVideoPipeline, image: np.ndarray, width: int, height: int) -> PIL.Image.Image:
    """The input image scaled to cover width x height and centre-cropped to it, by the same resize the pipeline
    applies to its image ("crop" mode), so the pipeline finds the requested size as the image's bucket and leaves
    the image as it is."""
    pil = PIL.Image.fromarray(np.ascontiguousarray(image), mode="RGB")
    resized = pipe.video_processor.resize(pil, height=height, width=width, resize_mode="crop")
    assert isinstance(resized, PIL.Image.Image)
    return resized


@contextmanager
def _guidance_scale(pipe: AnyHunyuan15Pipeline, scale: float) -> Iterator[None]:
    """The guider at `scale` for the body (1.0 turns the unconditional pass off), then the checkpoint's again."""
    guider: Any = pipe.guider
    shipped = guider.guidance_scale
    guider.guidance_scale = scale
    try:
        yield
    finally:
        guider.guidance_scale = shipped


@contextmanager
def _reported_steps(pipe: AnyHunyuan15Pipeline, on_step_end: StepCallback) -> Iterator[None]:
    """Call `on_step_end(pipe, i, t, {"latents": ...})` after each scheduler step of the body, as pipelines with
    `callback_on_step_end` do after theirs; whatever it raises leaves the pipeline call."""
    scheduler = pipe.scheduler
    real_step: Callable[..., Any] = scheduler.step
    index = 0

    def step(model_output: torch.Tensor, timestep: Any, sample: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        nonlocal index
        result = real_step(model_output, timestep, sample, *args, **kwargs)
        latents = result[0] if isinstance(result, tuple) else result.prev_sample
        on_step_end(pipe, index, timestep, {"latents": latents})
        index += 1
        return result

    # An instance attribute shadows the class's method for this scheduler only.
    scheduler.step = step  # type: ignore[method-assign]
    try:
        yield
    finally:
        del scheduler.step


def _describe_blocks() -> None:
    """Tell diffusers' block hooks (FirstBlockCache: the `balanced` and `fast` presets) where a
    HunyuanVideo15TransformerBlock takes and returns its video and text streams. diffusers 0.42 registers
    HunyuanVideo's blocks but not these, and refuses to cache an unregistered block; these have the same shape
    (`hidden_states, encoder_hidden_states, ...` in, that pair out), so they get the same entry."""
    try:
        TransformerBlockRegistry.get(HunyuanVideo15TransformerBlock)
    except ValueError:
        TransformerBlockRegistry.register(
            HunyuanVideo15TransformerBlock,
            TransformerBlockMetadata(return_hidden_states_index=0, return_encoder_hidden_states_index=1),
        )
