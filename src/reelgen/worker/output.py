"""Engine frames -> files on local scratch disk: the mp4 (streamed chunk by chunk into the encoder, with the
engine's soundtrack if it made one), a webp thumbnail and a jpg spritesheet. The worker then stages and commits
them to the artifact store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from reelgen.engines.base import VideoOutput
from reelgen.media.encode import AudioInfo, VideoWriter


@dataclass(frozen=True)
class EncodedClip:
    video: Path
    thumbnail: Path | None
    spritesheet: Path | None
    bytes: int
    num_frames: int
    width: int
    height: int
    fps: int
    sha256: str
    stats: dict[str, float] = field(default_factory=dict)
    # The soundtrack as stored in the mp4 (None: a silent video).
    audio: AudioInfo | None = None

    def files(self) -> list[Path]:
        return [p for p in (self.video, self.thumbnail, self.spritesheet) if p is not None]


def encode_clip(output: VideoOutput, folder: Path, name: str, *, check: Callable[[], None]) -> EncodedClip:
    """Encode while the engine still decodes (its chunks are lazy); `check` raises if the job must stop."""
    suffix = "" if name == "video" else name.removeprefix("video")
    thumbnail = folder / f"thumbnail{suffix}.webp"
    spritesheet = folder / f"spritesheet{suffix}.jpg"
    with VideoWriter(
        folder / f"{name}.mp4",
        output.width,
        output.height,
        output.fps,
        expected_frames=output.num_frames,
        audio=output.audio,
    ) as writer:
        for chunk in output.chunks:
            check()
            writer.write(chunk)
        encoded = writer.close()
        writer.write_previews(thumbnail, spritesheet)
    return EncodedClip(
        video=encoded.path,
        thumbnail=thumbnail,
        spritesheet=spritesheet,
        bytes=encoded.bytes,
        num_frames=encoded.num_frames,
        width=encoded.width,
        height=encoded.height,
        fps=int(encoded.fps),
        sha256=encoded.sha256,
        stats=dict(output.stats),
        audio=encoded.audio,
    )
