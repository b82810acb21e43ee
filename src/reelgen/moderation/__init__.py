"""Moderation hooks: a prompt check before enqueue and a frame check after generation.

Each is a small plugin interface (`PromptCheck`, `FrameCheck` in `base`) answering a `Verdict` (allow, hold or
block, with a reason). Settings choose the implementation by dotted path (`load_prompt_check`,
`load_frame_check`), so a classifier model can be plugged in without touching reelgen. Built in: a
configurable blocklist for prompts, and a frame check that allows everything (the hook point, ready for a
classifier).
"""

from reelgen.moderation.base import (
    AllowAllFrames,
    FrameCheck,
    ModerationBlocked,
    PromptCheck,
    Verdict,
    VerdictKind,
)
from reelgen.moderation.blocklist import Blocklist
from reelgen.moderation.loading import load_frame_check, load_prompt_check

__all__ = [
    "AllowAllFrames",
    "Blocklist",
    "FrameCheck",
    "ModerationBlocked",
    "PromptCheck",
    "Verdict",
    "VerdictKind",
    "load_frame_check",
    "load_prompt_check",
]
