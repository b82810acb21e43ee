"""Frames (and sound) in, web-ready media out (and back): H.264/AAC mp4, thumbnail, spritesheet, probing. Knows
nothing of jobs."""

from reelgen.media.encode import DEFAULT_CRF, DEFAULT_PRESET, AudioInfo, AudioSamples, EncodedVideo, VideoWriter
from reelgen.media.previews import FrameSampler, Previews, SpriteSheet, write_spritesheet, write_thumbnail
from reelgen.media.probe import MAX_IMAGE_PIXELS, VideoInfo, decode_audio, decode_frames, load_image, probe

__all__ = [
    "DEFAULT_CRF",
    "DEFAULT_PRESET",
    "MAX_IMAGE_PIXELS",
    "AudioInfo",
    "AudioSamples",
    "EncodedVideo",
    "FrameSampler",
    "Previews",
    "SpriteSheet",
    "VideoInfo",
    "VideoWriter",
    "decode_audio",
    "decode_frames",
    "load_image",
    "probe",
    "write_spritesheet",
    "write_thumbnail",
]
