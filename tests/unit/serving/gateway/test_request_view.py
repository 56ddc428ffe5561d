"""What the gateway measures of a request: from the engine request or from the wire body."""

from __future__ import annotations

from serving.api.chat_completion.protocol import ChatCompletionRequest
from serving.core.context import RequestContext
from serving.gateway.request_view import RequestView, view_of


def test_view_of_engine_request(ctx_factory):
    view = view_of(ctx_factory(messages=["abcd", "ef"], max_tokens=7, n=3))
    assert view == RequestView(messages=2, chars=6, max_tokens=7, n=3)
    assert view.prompt_token_estimate() == 2 + 8


def test_view_of_wire_body_before_the_engine_request_exists():
    body = ChatCompletionRequest.model_validate(
        {
            "model": "m",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "abc"}, {"type": "text", "text": "de"}]}],
            "max_completion_tokens": 9,
            "n": 2,
        }
    )
    ctx = RequestContext(request_id="r", response_id="x", route="/v1/chat/completions", model="m", headers={}, body=body)
    assert view_of(ctx) == RequestView(messages=1, chars=5, max_tokens=9, n=2)


def test_view_of_completion_prompts():
    class Body:
        prompt = ["abc", [1, 2, 3]]
        max_tokens = None
        n = 1

    ctx = RequestContext(request_id="r", response_id="x", route="/v1/completions", model="m", headers={}, body=Body())
    view = view_of(ctx)
    assert view.messages == 0 and view.chars == 3 + 3 * 4 and view.max_tokens is None
