"""Where a model's weights come from, checked without loading them. Torch-free, so the API process can use it.

A model's `source` is either a Hugging Face Hub repo id (``org/name``, read through the HF cache) or a local
folder in diffusers layout (``model_index.json`` plus one subfolder per component). Two questions matter:

- `weights_status(source)`: are the weights on this machine? (`reelgen models`, /v1/models)
- `require_weights(source)`: called by engine factories before any job work. It raises `WeightsNotFound` when
  the weights are neither local nor downloadable: a missing folder, or a repo not in the cache while the Hub
  is switched off (``HF_HUB_OFFLINE=1``). The message names what to download and how, instead of the stack of
  connection errors from_pretrained would give half-way through loading.

The HF cache location and offline switch are huggingface_hub's own settings (HF_HOME, HF_HUB_CACHE,
HF_HUB_OFFLINE); they are read through `huggingface_hub.constants`, so they always agree with what
from_pretrained will do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from reelgen.domain.errors import ReelgenError

# What a Hub repo id looks like (huggingface_hub's own rule, without importing its validators).
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# diffusers writes this file at the root of every pipeline folder/repo.
PIPELINE_INDEX = "model_index.json"


class WeightsNotFound(ReelgenError, ValueError):
    """The model's weights are not on this machine and cannot be fetched. Not worth retrying the job (a
    ValueError, which the worker treats as permanent) until someone downloads them."""

    code = "model_not_downloaded"


@dataclass(frozen=True)
class WeightsStatus:
    """`present`: the weights are on disk. `reason`: one line for people, with the fix when they are not."""

    present: bool
    reason: str


def is_repo_id(source: str | Path) -> bool:
    """A Hub repo id, not a path. An existing local folder wins over a repo id of the same spelling."""
    text = str(source)
    return isinstance(source, str) and bool(_REPO_ID.match(text)) and not Path(text).expanduser().exists()


def download_command(repo_id: str) -> str:
    """The shell command that puts `repo_id` into the HF cache (huggingface_hub >= 1.0 ships `hf`)."""
    return f"hf download {repo_id}"


def download_hint(repo_id: str) -> str:
    return (
        f"download it with `{download_command(repo_id)}` (older huggingface_hub: `huggingface-cli download "
        f"{repo_id}`) into the Hugging Face cache ({_hub_cache()}), or download it elsewhere and register the "
        "model with that local folder as its source"
    )


def weights_status(source: str | Path) -> WeightsStatus:
    """Are the weights on this machine? Looks at the disk only; never touches the network."""
    if not is_repo_id(source):
        folder = Path(source).expanduser()
        if (folder / PIPELINE_INDEX).is_file():
            return WeightsStatus(True, f"local folder {folder}")
        return WeightsStatus(False, f"local folder {folder} has no {PIPELINE_INDEX} (not a diffusers pipeline)")
    repo_id = str(source)
    if _cached_index(repo_id) is not None:
        return WeightsStatus(True, f"{repo_id} is in the Hugging Face cache")
    return WeightsStatus(False, f"needs download: `{download_command(repo_id)}`")


def require_weights(source: str | Path) -> None:
    """Fail now, with the fix in the message, if loading `source` could only fail later.

    A repo that is not cached is fine while the Hub is reachable (from_pretrained downloads it); with
    HF_HUB_OFFLINE=1 it is an error. A cached repo may still be incomplete (an interrupted download):
    from_pretrained reports the missing file by name then.
    """
    status = weights_status(source)
    if status.present:
        return
    if not is_repo_id(source):
        raise WeightsNotFound(f"cannot load model weights: {status.reason}", param="model")
    if hub_offline():
        raise WeightsNotFound(
            f"model weights {source} are not in the Hugging Face cache and HF_HUB_OFFLINE is set, so they cannot "
            f"be downloaded now; {download_hint(str(source))}",
            param="model",
        )


def file_status(source: str | Path, filename: str) -> WeightsStatus:
    """Is one file of a Hub repo (e.g. a LoRA among many in an adapter repo) in the cache, or the file in a local
    folder? Disk only."""
    if not is_repo_id(source):
        path = Path(source).expanduser() / filename
        if path.is_file():
            return WeightsStatus(True, f"local file {path}")
        return WeightsStatus(False, f"local file {path} does not exist")
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(str(source), filename), str):
        return WeightsStatus(True, f"{source}/{filename} is in the Hugging Face cache")
    return WeightsStatus(False, f"needs download: `{download_command(str(source))} {filename}`")


def require_file(source: str | Path, filename: str) -> None:
    """`require_weights` for one file of a repo or folder."""
    status = file_status(source, filename)
    if status.present:
        return
    if not is_repo_id(source) or hub_offline():
        raise WeightsNotFound(
            f"cannot load {filename} of {source}: {status.reason}"
            + (" (HF_HUB_OFFLINE is set, so it cannot be downloaded now)" if is_repo_id(source) else ""),
            param="model",
        )


def hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _hub_cache() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def _cached_index(repo_id: str) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, PIPELINE_INDEX)
    # A str is the cached file; None (never fetched) or a sentinel (known not to exist) mean "not here".
    return found if isinstance(found, str) else None
