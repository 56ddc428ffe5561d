"""Stage lines on stderr while a model folder is built, with elapsed seconds.

A first run converts the packaged model, which takes tens of seconds; these lines tell
the person watching ``make run`` what is happening and how long each step took::

    [model] preparing SmolLM2-135M-Instruct (first run only) -> /root/.cache/...
    [model] reading tokenizer from GGUF (1/4)... done in 3.9 s
    ...
    [model] ready in 21.4 s
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Iterator, TextIO


class Progress:
    """Numbered stages, each printed as one line that ends with its duration."""

    def __init__(self, total: int, *, prefix: str = "[model]", stream: TextIO | None = None) -> None:
        self.total = total
        self.prefix = prefix
        self._stream = stream
        self._done = 0
        self._started = time.monotonic()

    @property
    def stream(self) -> TextIO:
        """Where lines go (stderr unless given; looked up late so capture works)."""
        return self._stream if self._stream is not None else sys.stderr

    def note(self, message: str) -> None:
        """Print one line that is not a numbered stage."""
        self._write(f"{self.prefix} {message}\n")

    @contextmanager
    def stage(self, label: str) -> Iterator[None]:
        """Print ``label (n/total)...``, run the block, then ``done in X s`` (or ``failed``)."""
        self._done += 1
        self._write(f"{self.prefix} {label} ({self._done}/{self.total})...")
        started = time.monotonic()
        try:
            yield
        except BaseException:
            self._write(f" failed after {time.monotonic() - started:.1f} s\n")
            raise
        self._write(f" done in {time.monotonic() - started:.1f} s\n")

    def elapsed(self) -> float:
        """Seconds since this progress display was created."""
        return time.monotonic() - self._started

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()
