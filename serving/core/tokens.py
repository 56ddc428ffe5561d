"""A request's prompt token ids, tokenized once and shared by the request path.

The generation pipeline puts the engine's ``tokenize`` on the context
(``RequestContext.tokenize``) before the policies run. The first policy that needs
the exact prompt size (the rate limiter; the context policy when the limiter is off)
calls ``prompt_token_ids(ctx)``: the engine tokenizes ``ctx.generate`` (chat template
applied, off the event loop) and the ids are stored on it
(``GenerateRequest.prompt_token_ids``). Every later caller gets them back without
tokenizing, and the engine's ``generate`` feeds them to the model as they are: a chat
request that needs no truncation is tokenized exactly once.

A policy that rewrites the prompt or messages must carry the new text's ids (or None)
on its replacement: ``dataclasses.replace`` would otherwise copy the old ones.
"""

from __future__ import annotations

import dataclasses

from serving.core.context import RequestContext, Tokenize


async def prompt_token_ids(ctx: RequestContext, tokenize: Tokenize | None = None) -> tuple[int, ...] | None:
    """The prompt token ids of ``ctx.generate``, tokenized on the first call and cached on it.

    ``tokenize`` is the engine's (default: the one the pipeline left on ``ctx``). None when
    there is no engine request (a route that generates nothing) or no tokenizer at hand.
    Raises what the engine's ``tokenize`` raises (e.g. InvalidRequestError for input the
    tokenizer refuses).
    """
    request = ctx.generate
    if request is None:
        return None
    if request.prompt_token_ids is not None:
        return request.prompt_token_ids
    tokenize = tokenize or ctx.tokenize
    if tokenize is None:
        return None
    ids = tuple(await tokenize(request))
    if ctx.generate is request:  # nothing replaced the request while the tokenizer ran
        ctx.generate = dataclasses.replace(request, prompt_token_ids=ids)
    return ids
