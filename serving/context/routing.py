"""Sticky routing: every request of a conversation goes to the same model replica.

A Ray Serve request router (``ray.serve.request_router.RequestRouter``, Ray 2.60).
Serve's HTTP proxy copies the session header (``x-session-id`` by default, renamed
with the ``RAY_SERVE_SESSION_ID_HEADER_KEY`` environment variable) into the request
metadata's ``session_id``; a handle caller sets it with
``handle.options(session_id=...)``. With a session id, replicas are ranked by
rendezvous hashing of (session id, replica id): the first is the conversation's home
(its KV prefix cache is warm), the next ``num_fallback_replicas`` are tried in order
when it is full. Adding or removing a replica moves only the sessions it gains or
loses. Without a session id the router falls back to "power of two choices".

Configure it on the model deployment (Serve config or ``.options``)::

    request_router_config:
      request_router_class: serving.context.routing:SessionAffinityRouter
      request_router_kwargs: {num_fallback_replicas: 1}

Serve pickles this module by value into every router: it imports only Ray and the
standard library.
"""

from __future__ import annotations

import hashlib
import random
from typing import List, Optional

from ray.serve.request_router import PendingRequest, RequestRouter, RunningReplica


def affinity_rank(session_id: str, replica_ids: List[str]) -> List[str]:
    """``replica_ids`` ordered by rendezvous hash weight for ``session_id`` (home first)."""

    def weight(replica_id: str) -> bytes:
        return hashlib.blake2b(f"{session_id}\x00{replica_id}".encode(), digest_size=8).digest()

    return sorted(replica_ids, key=weight, reverse=True)


class SessionAffinityRouter(RequestRouter):
    """Routes a session's requests to its home replica; others by power of two choices."""

    def initialize_state(self, num_fallback_replicas: int = 1, **kwargs) -> None:
        """Router kwargs from ``request_router_kwargs``."""
        if not isinstance(num_fallback_replicas, int) or num_fallback_replicas < 0:
            raise ValueError(f"num_fallback_replicas must be a non-negative int, got {num_fallback_replicas!r}")
        self.num_fallback_replicas = num_fallback_replicas

    async def choose_replicas(
        self,
        candidate_replicas: List[RunningReplica],
        pending_request: Optional[PendingRequest] = None,
    ) -> List[List[RunningReplica]]:
        """Ranks of candidates: [[home], [fallback 1], ...] for a session, else [[a, b]]."""
        if not candidate_replicas:
            return []
        if pending_request is not None:
            pending_request.routing_context.should_backoff = True
        session_id = pending_request.metadata.session_id if pending_request is not None else ""
        if not session_id:
            return [random.sample(candidate_replicas, min(2, len(candidate_replicas)))]
        by_id = {r.replica_id.unique_id: r for r in candidate_replicas}
        ranked = affinity_rank(session_id, list(by_id))[: 1 + getattr(self, "num_fallback_replicas", 1)]
        return [[by_id[replica_id]] for replica_id in ranked]
