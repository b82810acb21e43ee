"""The worker loop: claim a job, run its stages on a resident engine, encode, commit the artifact (fenced),
finish the job. Nothing here decides *what* runs next (that is the store's claim order) or *how* frames are
made (that is the engine)."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from reelgen.domain.errors import InvalidParams, JobCancelled, ReelgenError, StaleAttempt
from reelgen.domain.jobs import Artifact, Claim, Job, JobError
from reelgen.engines.base import StageRequest
from reelgen.engines.lora import LoraLibrary, LoraWeights
from reelgen.jobs.quota_store import WorkerDrained
from reelgen.jobs.store import JobStore
from reelgen.moderation.base import FrameCheck
from reelgen.storage.base import ArtifactStore, Staged
from reelgen.worker.engine_cache import EngineCache
from reelgen.worker.output import EncodedClip, encode_clip
from reelgen.worker.progress import Heartbeat, JobControl, LeaseLost, StoreProgressSink

log = logging.getLogger("reelgen.worker")


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 100000}"


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    worker_id: str
    heartbeat_seconds: float
    models: tuple[str, ...] | None = None
    # Longest sleep between claims when nothing wakes the worker (a safety net; wake-ups are push-based).
    idle_wait_seconds: float = 1.0
    progress_interval: float = 0.1
    preview_interval: float = 1.0
    # REELGEN_LORA_DIR: where the LoRAs jobs name (params.lora) are read from.
    lora_dir: Path | None = None


class Worker:
    def __init__(
        self,
        store: JobStore,
        artifacts: ArtifactStore,
        engines: EngineCache,
        config: WorkerConfig,
        *,
        scratch_dir: Path | None = None,
        on_step: Callable[[int, int], None] | None = None,
        frame_check: FrameCheck | None = None,
        frame_samples: int = 8,
    ) -> None:
        self.store, self.artifacts, self.engines, self.config = store, artifacts, engines, config
        # Moderation hook run on frames sampled from each finished video (None: no check).
        self.frame_check, self.frame_samples = frame_check, frame_samples
        self.scratch_dir = scratch_dir
        self.on_step = on_step

    # --- loop ----------------------------------------------------------------------------------------
    def run_forever(self, stop: threading.Event) -> None:
        self.store.prepare_wait()
        while not stop.is_set():
            try:
                job = self.run_once()
            except WorkerDrained:
                log.info("worker %s drained by an operator: exiting", self.config.worker_id)
                return
            except Exception:  # the database is down, say: keep the worker alive and retry
                log.exception("worker loop error")
                stop.wait(1.0)
                continue
            if job is None:
                due = self.store.next_wakeup()
                timeout = (
                    self.config.idle_wait_seconds if due is None else min(due + 0.01, self.config.idle_wait_seconds)
                )
                self.store.wait_for_work(timeout)

    def run_once(self) -> Job | None:
        """Claim and run one job; returns it as it ended (None when the queue had nothing for us, or it is
        paused). Raises WorkerDrained when an operator drained this worker (after its last job finished)."""
        # The model this worker has loaded: the scheduler prefers its jobs when fairness allows (affinity).
        claim = self.store.claim(self.config.worker_id, self.config.models, loaded_model=self.engines.resident)
        if claim is None:
            return None
        return self.process(claim)

    # --- one job -------------------------------------------------------------------------------------
    def process(self, claim: Claim) -> Job | None:
        job = claim.job
        log.info("job %s attempt %d: %s", job.id, claim.attempt, job.params.prompt[:60])
        control = JobControl()
        scratch = Path(tempfile.mkdtemp(prefix=f"reelgen-{job.id}-", dir=self.scratch_dir))
        staged: list[Staged] = []
        committed: list[str] = []
        # An earlier attempt's worker may have died mid-upload: its temp files are garbage now.
        self.artifacts.delete_prefix(f"tmp/{job.id}/")
        try:
            with Heartbeat(self.store, claim, control, self.config.heartbeat_seconds):
                clips = self._generate(claim, control, scratch)
                control.check()
                hold = self._check_frames(clips)
                artifact = self._store_artifact(claim, clips, staged, committed)
                staged.clear()
                control.check()
                done = self.store.complete(claim, artifact, hold_reason=hold)
                committed.clear()
                return done
        except LeaseLost:
            log.warning("job %s attempt %d: lease lost, discarding work", job.id, claim.attempt)
            return None
        except JobCancelled:
            return self._finish_cancelled(claim)
        except StaleAttempt:
            log.warning("job %s attempt %d: superseded, discarding work", job.id, claim.attempt)
            return None
        except Exception as e:
            log.error("job %s attempt %d failed: %s", job.id, claim.attempt, traceback.format_exc())
            return self._finish_failed(claim, e)
        finally:
            for s in staged:
                self.artifacts.discard(s)
            for key in committed:  # committed files of an attempt that did not complete
                self.artifacts.delete(key)
            shutil.rmtree(scratch, ignore_errors=True)

    def _generate(self, claim: Claim, control: JobControl, scratch: Path) -> list[EncodedClip]:
        params = claim.job.params
        engine = self.engines.get(params.model)
        input_image = None
        if params.input_image:
            from reelgen.media.probe import load_image

            input_image = load_image(self.artifacts.read_bytes(params.input_image))
        sink = StoreProgressSink(
            self.store,
            claim,
            control,
            min_interval=self.config.progress_interval,
            preview_interval=self.config.preview_interval,
            on_step=self.on_step,
        )
        lora = self._lora(params.lora, params.lora_scale)
        request = StageRequest(params=params, input_image=input_image, lora=lora, count=params.n)
        # The n variations in as few denoising passes as memory allows (a batch each). Progress and step times
        # stay per variation (a step of a pass of k counts k times, and took 1/k of its time per clip), so
        # ETAs and cost estimates read the same whether a worker batches or not.
        batch = max(1, min(params.n, engine.max_batch(request)))
        sink.grand_total = params.steps * params.n
        clips = []
        for first in range(0, params.n, batch):
            part = replace(request, variation=first, count=min(batch, params.n - first))
            sink.offset, sink.per_step = first * params.steps, part.count
            sink.start_stage()
            control.check()
            timed = len(sink.step_times)
            outputs = engine.run_batch(part, sink)
            steps = sink.step_times[timed:]
            for variation, output in enumerate(outputs, start=first):
                name = "video" if variation == 0 else f"video_{variation}"
                clips.append(encode_clip(output, scratch, name, check=control.check))
                stats = clips[-1].stats
                # Each clip's share of the pass it came from: quota charges and ETAs count per variation.
                for key in ("denoise_seconds", "first_step_seconds"):
                    if key in stats:
                        stats[key] /= part.count
                stats["batch"] = float(part.count)
                if steps:
                    stats["mean_step_seconds"] = sum(steps) / len(steps) / part.count
        return clips

    def _lora(self, name: str | None, scale: float) -> LoraWeights | None:
        """The job's LoRA file in the LoRA folder; a LoRA removed since the job was accepted fails it for good."""
        if name is None:
            return None
        try:
            return LoraLibrary(self.config.lora_dir).weights(name, scale)
        except FileNotFoundError:
            raise InvalidParams(f"no LoRA named {name!r} in this worker's LoRA folder", param="lora") from None

    def _check_frames(self, clips: list[EncodedClip]) -> str | None:
        """The frame-check hook on frames sampled evenly from every variation: the reason to hold the finished
        video for review, or None. A check that crashes holds it too (a moderator decides, nothing leaks)."""
        if self.frame_check is None:
            return None
        from reelgen.media.probe import decode_frames

        for clip in clips:
            try:
                frames = decode_frames(clip.video)
                count = max(1, min(self.frame_samples, len(frames)))
                picks = np.linspace(0, len(frames) - 1, count).round().astype(int)
                verdict = self.frame_check.check(frames[picks])
            except Exception as e:
                log.exception("frame check failed on %s", clip.video.name)
                return f"the frame check failed ({type(e).__name__}: {e})"[:500]
            if not verdict.allowed:
                return (verdict.reason or "flagged by the frame check")[:500]
        return None

    def _store_artifact(
        self, claim: Claim, clips: list[EncodedClip], staged: list[Staged], committed: list[str]
    ) -> Artifact:
        """Upload under temp keys, then commit to keys that include the attempt: a stale attempt can never
        overwrite the files of the attempt that completes."""
        nonce = os.urandom(4).hex()
        temp_prefix = f"tmp/{claim.job_id}/{claim.attempt}-{nonce}"
        final_prefix = f"videos/{claim.job_id}/{claim.attempt}"
        pending: list[tuple[Staged, str]] = []
        for clip in clips:
            for path in clip.files():
                s = self.artifacts.stage(path, f"{temp_prefix}/{path.name}")
                staged.append(s)
                pending.append((s, f"{final_prefix}/{path.name}"))
        # Cheap early fence: don't publish files for an attempt that is already superseded.
        self.store.heartbeat(claim)
        for s, final_key in pending:
            self.artifacts.commit(s, final_key)
            staged.remove(s)
            committed.append(final_key)
        main = clips[0]
        extra: dict = {"stats": main.stats}
        if main.audio is not None:  # absent from silent videos (and from every row older than sound)
            extra["audio"] = {
                "sample_rate": main.audio.sample_rate,
                "channels": main.audio.channels,
                "seconds": main.audio.seconds,
            }
        if len(clips) > 1:
            extra["variations"] = [f"{final_prefix}/{c.video.name}" for c in clips[1:]]
        return Artifact(
            video_key=f"{final_prefix}/{main.video.name}",
            thumbnail_key=f"{final_prefix}/{main.thumbnail.name}" if main.thumbnail else None,
            spritesheet_key=f"{final_prefix}/{main.spritesheet.name}" if main.spritesheet else None,
            bytes=main.bytes,
            num_frames=main.num_frames,
            width=main.width,
            height=main.height,
            fps=main.fps,
            sha256=main.sha256,
            extra=extra,
        )

    def _finish_cancelled(self, claim: Claim) -> Job | None:
        log.info("job %s attempt %d: cancelled", claim.job_id, claim.attempt)
        try:
            return self.store.mark_cancelled(claim)
        except StaleAttempt:
            return None

    def _finish_failed(self, claim: Claim, error: Exception) -> Job | None:
        retryable = not isinstance(error, InvalidParams | ValueError)
        code = error.code if isinstance(error, ReelgenError) else "engine_error"
        message = f"{type(error).__name__}: {error}"[:2000]
        try:
            return self.store.fail(claim, JobError(code=code, message=message), retryable=retryable)
        except StaleAttempt:
            return None


def run_workers(make_worker: Callable[[int], Worker], count: int, stop: threading.Event) -> list[threading.Thread]:
    """Start `count` worker threads (embedded workers of `reelgen serve`)."""
    threads = []
    for i in range(count):
        worker = make_worker(i)
        t = threading.Thread(target=worker.run_forever, args=(stop,), name=f"reelgen-worker-{i}", daemon=True)
        t.start()
        threads.append(t)
    return threads
