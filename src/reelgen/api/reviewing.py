"""ReviewService: publishing with a moderator's approval, moderation holds and the audit log's read side
(reelgen extensions), with no HTTP in it. The rules are reelgen/domain/review.py's; each decision here checks
who may take it and names the review states it was checked against, so the store's compare-and-set refuses a
decision whose premise changed meanwhile (two moderators, or an owner withdrawing while a moderator approves).

- owners: submit a completed video for publication (`publish`), withdraw it or take it out of the gallery
  (`unpublish`); only their own videos (another user's answers 404, a moderator acting on someone else's
  video through the owner's endpoints gets 403: moderators use /v1/admin).
- moderators (admins too): the review queue, approve, reject or take down with a reason; the held list,
  release or reject. They see (and download) any video, held ones included, through /v1/videos.
- anyone authenticated: the gallery, approved videos only, with their content.
- admins: the audit log.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from anyio import to_thread

from reelgen.api.errors import bad_request
from reelgen.api.forms import ParsedBody
from reelgen.api.protocol import (
    AuditList,
    AuditRecord,
    ContentVariant,
    ReviewDecisionRequest,
    ReviewItem,
    ReviewList,
    VideoList,
)
from reelgen.api.serving import MAX_LIST_LIMIT, ContentRef, Rendered, VideoService, _parse
from reelgen.domain.accounts import Principal
from reelgen.domain.errors import Forbidden, NotFound
from reelgen.domain.jobs import Job
from reelgen.domain.review import ReviewState, clean_reason

S = ReviewState
T = TypeVar("T")


async def _run(fn: Callable[..., T], *args: Any) -> T:
    return await to_thread.run_sync(fn, *args)


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise bad_request(f"limit must be between 1 and {MAX_LIST_LIMIT}", param="limit")


class ReviewService:
    def __init__(self, videos: VideoService) -> None:
        self.videos = videos
        self.store = videos.store

    # --- owners ------------------------------------------------------------------------------------------
    async def publish(self, principal: Principal, video_id: str) -> Rendered:
        """Submit a completed video for publication (none or rejected -> pending). Already pending or approved:
        returned unchanged. Held, blocked or not completed: 409."""
        return await _run(self._publish, principal, video_id)

    def _publish(self, principal: Principal, video_id: str) -> Rendered:
        job = self._own(principal, video_id)
        if job.review.state in (S.PENDING, S.APPROVED):
            return self.videos._render(job)
        return self.videos._render(
            self.store.set_review(job.id, S.PENDING, actor=principal.user_id, expect={S.NONE, S.REJECTED})
        )

    async def unpublish(self, principal: Principal, video_id: str) -> Rendered:
        """Withdraw a submission or take a published video out of the gallery (pending or approved -> none).
        In any other state (never submitted, rejected, held, blocked) it is returned unchanged."""
        return await _run(self._unpublish, principal, video_id)

    def _unpublish(self, principal: Principal, video_id: str) -> Rendered:
        job = self._own(principal, video_id)
        if job.review.state not in (S.PENDING, S.APPROVED):
            return self.videos._render(job)
        return self.videos._render(
            self.store.set_review(job.id, S.NONE, actor=principal.user_id, expect={S.PENDING, S.APPROVED})
        )

    def _own(self, principal: Principal, video_id: str) -> Job:
        job = self.videos._owned(principal, video_id)  # 404 for another user's video
        if job.owner != principal.user_id:
            raise Forbidden("only the owner submits or withdraws a video; moderators use /v1/admin/reviews")
        return job

    # --- moderators --------------------------------------------------------------------------------------
    async def queue(self, state: ReviewState, *, limit: int = 20, after: str | None = None) -> ReviewList:
        """The review queue (pending) or the held list, oldest first."""
        _check_limit(limit)
        return await _run(self._queue, state, limit, after)

    def _queue(self, state: ReviewState, limit: int, after: str | None) -> ReviewList:
        if after is not None:
            cursor = self.store.get(after)
            if cursor is None or cursor.review.state is not state:
                raise bad_request(
                    f"after: no {state.value} video with id {after!r}", param="after", code="invalid_cursor"
                )
        page = self.store.list_reviews(state, limit=limit, after=after)
        data = [ReviewItem(owner=job.owner, video=self.videos._render(job).video) for job in page.jobs]
        return ReviewList(
            data=data,
            first_id=data[0].video.id if data else None,
            last_id=data[-1].video.id if data else None,
            has_more=page.has_more,
        )

    async def approve(self, principal: Principal, video_id: str) -> Rendered:
        """pending -> approved: the video enters the gallery. Any other state: 409."""
        return await _run(self._decide, principal, video_id, S.APPROVED, {S.PENDING}, None)

    async def reject(self, principal: Principal, video_id: str, body: ParsedBody) -> Rendered:
        """pending -> rejected, or approved -> rejected (taken down), with a required reason."""
        reason = self._reason(body)
        return await _run(self._decide, principal, video_id, S.REJECTED, {S.PENDING, S.APPROVED}, reason)

    async def release(self, principal: Principal, video_id: str) -> Rendered:
        """held -> none: a held job becomes claimable, a held video watchable by its owner."""
        return await _run(self._decide, principal, video_id, S.NONE, {S.HELD}, None)

    async def block(self, principal: Principal, video_id: str, body: ParsedBody) -> Rendered:
        """held -> blocked, with a required reason: a job that never ran is cancelled; a finished video's content
        stays withheld from its owner."""
        reason = self._reason(body)
        return await _run(self._decide, principal, video_id, S.BLOCKED, {S.HELD}, reason)

    def _decide(
        self, principal: Principal, video_id: str, new: ReviewState, expect: set[ReviewState], reason: str | None
    ) -> Rendered:
        job = self.store.get(video_id)
        if job is None or not principal.sees_all:
            raise NotFound(f"no video with id {video_id!r}", param="video_id")
        return self.videos._render(
            self.store.set_review(job.id, new, actor=principal.user_id, expect=expect, reason=reason)
        )

    @staticmethod
    def _reason(body: ParsedBody) -> str:
        request = _parse(ReviewDecisionRequest, body.fields, files=body.files)
        reason = clean_reason(request.reason, required=True)
        assert reason is not None
        return reason

    # --- everyone: the gallery ---------------------------------------------------------------------------
    async def gallery(self, *, limit: int = 20, after: str | None = None) -> VideoList:
        """Approved videos of every owner, most recently published first."""
        _check_limit(limit)
        return await _run(self._gallery, limit, after)

    def _gallery(self, limit: int, after: str | None) -> VideoList:
        if after is not None:
            cursor = self.store.get(after)
            if cursor is None or cursor.review.state is not S.APPROVED:
                raise bad_request(f"after: no published video with id {after!r}", param="after", code="invalid_cursor")
        page = self.store.list_published(limit=limit, after=after)
        data = [self.videos._render(job).video for job in page.jobs]
        return VideoList(
            data=data,
            first_id=data[0].id if data else None,
            last_id=data[-1].id if data else None,
            has_more=page.has_more,
        )

    async def gallery_content(self, video_id: str, variant: ContentVariant) -> ContentRef:
        """An approved video's asset, for any authenticated caller; anything else is a 404."""
        return await _run(self._gallery_content, video_id, variant)

    def _gallery_content(self, video_id: str, variant: ContentVariant) -> ContentRef:
        job = self.store.get(video_id)
        if job is None or job.review.state is not S.APPROVED or job.published_at is None:
            raise NotFound(f"no published video with id {video_id!r}", param="video_id")
        return self.videos.content_ref(job, variant)

    # --- admins: the audit log ---------------------------------------------------------------------------
    async def audit(
        self, *, limit: int = 50, before: int | None = None, target: str | None = None, actor: str | None = None
    ) -> AuditList:
        _check_limit(limit)
        entries = await _run(lambda: self.store.audit_log(limit=limit + 1, before=before, target=target, actor=actor))
        data = [
            AuditRecord(
                seq=e.seq, actor=e.actor, action=e.action, target=e.target, data=e.data, created_at=e.created_at
            )
            for e in entries[:limit]
        ]
        return AuditList(data=data, last_seq=data[-1].seq if data else None, has_more=len(entries) > limit)
