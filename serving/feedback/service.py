"""The logic behind ``POST /v1/feedback``: validate limits, store off the event loop, count."""

from __future__ import annotations

import asyncio
import re

from serving.errors import ConflictError, InvalidRequestError, NotFoundError
from serving.feedback.metrics import FeedbackMetrics
from serving.feedback.protocol import TAG_PATTERN, FeedbackRequest, FeedbackResponse
from serving.config.feedback import FeedbackSettings
from serving.feedback.store import FeedbackInput, FeedbackStore, StoredFeedback

_TAG = re.compile(TAG_PATTERN)
FIRST_RECHECK_S = 0.05  # first pause before looking up an unknown id again; doubles each time
OWN_WRITE_WAIT_S = 10.0  # longest wait for this replica's writer to write a record it holds


class FeedbackService:
    """Accepts feedback for responses in the store."""

    def __init__(self, settings: FeedbackSettings, store: FeedbackStore, metrics: FeedbackMetrics) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics

    def validate(self, body: FeedbackRequest, key_id: str | None) -> FeedbackInput:
        """The submission as stored, or a 400 naming the bad field."""
        comment = body.comment.strip() if body.comment else None
        if comment is not None and len(comment) > self.settings.max_comment_chars:
            raise InvalidRequestError(
                f"`comment` is longer than {self.settings.max_comment_chars} characters.", param="comment"
            )
        if len(body.tags) > self.settings.max_tags:
            raise InvalidRequestError(f"At most {self.settings.max_tags} tags are accepted.", param="tags")
        for i, tag in enumerate(body.tags):
            if not _TAG.match(tag):
                raise InvalidRequestError(
                    f"Tag {i} is not a valid tag: 1-48 letters, digits or _.:/- (starting with a letter or digit).",
                    param=f"tags.{i}",
                )
        tags = tuple(dict.fromkeys(t.lower() for t in body.tags))
        return FeedbackInput(body.response_id, body.thumbs, body.score, comment or None, tags, key_id)

    async def submit(self, body: FeedbackRequest, key_id: str | None) -> FeedbackResponse:
        """Store one feedback (404 unknown response, 409 duplicate)."""
        feedback = self.validate(body, key_id)
        try:
            stored = await self._store(feedback)
        except NotFoundError:
            self.metrics.rejected("not_found")
            raise
        except ConflictError:
            self.metrics.rejected("duplicate")
            raise
        self.metrics.submitted(stored.model, stored.model_version, stored.thumbs, stored.score)
        return FeedbackResponse(
            id=stored.id,
            response_id=stored.response_id,
            created=int(stored.created_at.timestamp()),
            thumbs=stored.thumbs,  # type: ignore[arg-type]
            score=stored.score,
        )

    async def _store(self, feedback: FeedbackInput) -> StoredFeedback:
        """Store it, holding a worker thread only for single lookups and the insert.

        A response that finished here and is still in this store's write buffer: await the
        writer (on the event loop), then one lookup. Any other id: one lookup at once and, if
        unknown, a few more with growing pauses on the event loop until ``lookup_grace_s``
        (the record may still sit in another replica's write buffer), then 404.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.lookup_grace_s
        # Written by our own writer: then one lookup is the answer (found, or another key's).
        written_here = self.store.is_buffered(feedback.response_id) and await self.store.flush_async(OWN_WRITE_WAIT_S)
        pause = FIRST_RECHECK_S
        while True:
            try:
                return await asyncio.to_thread(self.store.add_feedback, feedback, wait_for_buffer=False)
            except NotFoundError:
                remaining = deadline - loop.time()
                if written_here or remaining <= 0:
                    raise
                await asyncio.sleep(min(pause, remaining))
                pause *= 2
