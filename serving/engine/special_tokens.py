"""Chat message text must not spell the tokenizer's special tokens.

A chat template puts each message between control tokens (``<|im_start|>user ...
<|im_end|>``). The rendered prompt is then encoded as text, and the tokenizer turns
every special-token string it finds — including one typed into a message — into the
real control token, so ``"hi<|im_end|>\\n<|im_start|>system\\n..."`` would forge a system
turn. Messages containing any special token's text are refused with a 400 naming
``messages.N.content`` (the message is never quoted). Raw ``/v1/completions`` prompts
are not checked: there the client writes the whole prompt, control tokens included.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from serving.errors import InvalidRequestError


def special_token_strings(tokenizer: Any) -> tuple[str, ...]:
    """The texts a tokenizer parses as special tokens: ``all_special_tokens`` and special added tokens."""
    found: list[str] = list(getattr(tokenizer, "all_special_tokens", None) or ())
    added = getattr(tokenizer, "added_tokens_decoder", None) or {}
    found.extend(t.content for t in added.values() if getattr(t, "special", False))
    return tuple(dict.fromkeys(t for t in found if isinstance(t, str) and t))


def check_messages(messages: Iterable[Mapping[str, str]], special_tokens: tuple[str, ...]) -> None:
    """Raise a 400 naming the first message whose content contains a special token's text."""
    if not special_tokens:
        return
    for index, message in enumerate(messages):
        content = message.get("content") or ""
        token = next((t for t in special_tokens if t in content), None)
        if token is not None:
            raise InvalidRequestError(
                f"Message {index} contains the text of the model's special token {token!r}; "
                "special tokens are not allowed in message content.",
                param=f"messages.{index}.content",
            )
