"""Real moderation plugins for the tests (loaded by dotted path through the settings, as an operator's
classifier would be): a prompt check and a frame check with actual logic, not mocks."""

from __future__ import annotations

import numpy as np

from reelgen.moderation import Verdict
from reelgen.settings import Settings


class BrightnessCheck:
    """Flags a video whose sampled frames are brighter on average than `max_mean` (0-255)."""

    def __init__(self, max_mean: float) -> None:
        self.max_mean = max_mean
        self.seen: list[tuple[int, ...]] = []

    def check(self, frames: np.ndarray) -> Verdict:
        self.seen.append(tuple(frames.shape))
        mean = float(frames.mean())
        if mean > self.max_mean:
            return Verdict.hold(f"mean brightness {mean:.0f} is above {self.max_mean:g} ({len(frames)} frames)")
        return Verdict.allow()


FLAG_ANY_LIGHT = BrightnessCheck(max_mean=0.0)
ALLOW_ALL_LIGHT = BrightnessCheck(max_mean=255.0)


class ShoutingPromptCheck:
    """Holds prompts written in capitals, blocks ones that also end in '!!!'."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def check(self, prompt: str) -> Verdict:
        letters = [c for c in prompt if c.isalpha()]
        if letters and all(c.isupper() for c in letters):
            if prompt.endswith("!!!"):
                return Verdict.block("shouting with exclamation marks")
            return Verdict.hold("the prompt is in capitals")
        return Verdict.allow()


# Misconfigurations the loader must refuse with a clear message.
NOT_A_PLUGIN = 42


def returns_no_check(settings: Settings) -> str:
    return "not a check"
