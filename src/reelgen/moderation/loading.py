"""Choose the moderation plugins named by settings, like the engine registry: `package.module:name`, where
`name` is a check object or a callable taking the Settings and returning one."""

from __future__ import annotations

import importlib
from typing import Any

from reelgen.moderation.base import AllowAllFrames, FrameCheck, PromptCheck
from reelgen.moderation.blocklist import Blocklist
from reelgen.settings import Settings


def load_plugin(path: str, settings: Settings) -> Any:
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"moderation plugin {path!r}: expected 'package.module:name'")
    obj = getattr(importlib.import_module(module_name), attr)
    if hasattr(obj, "check") and not isinstance(obj, type):
        return obj
    if not callable(obj):
        raise TypeError(f"moderation plugin {path!r} has no check method and is not a callable returning a check")
    return obj(settings)


def load_prompt_check(settings: Settings) -> PromptCheck:
    if settings.moderation_prompt_check:
        check = load_plugin(settings.moderation_prompt_check, settings)
    else:
        check = Blocklist.from_settings(
            settings.moderation_blocklist,
            settings.moderation_blocklist_file,
            settings.moderation_blocklist_action,
        )
    if not isinstance(check, PromptCheck):
        raise TypeError(f"{settings.moderation_prompt_check!r} has no check(prompt) method")
    return check


def load_frame_check(settings: Settings) -> FrameCheck:
    check = (
        load_plugin(settings.moderation_frame_check, settings) if settings.moderation_frame_check else AllowAllFrames()
    )
    if not isinstance(check, FrameCheck):
        raise TypeError(f"{settings.moderation_frame_check!r} has no check(frames) method")
    return check
