"""Stage lines: numbered, one line each, with the elapsed seconds or a failure note."""

from __future__ import annotations

import io
import re

import pytest

from serving.model.progress import Progress


def test_stages_print_numbered_lines_with_durations() -> None:
    out = io.StringIO()
    progress = Progress(total=2, stream=out)
    progress.note("preparing X")
    with progress.stage("loading GGUF"):
        pass
    with progress.stage("writing files"):
        pass
    lines = out.getvalue().splitlines()
    assert lines[0] == "[model] preparing X"
    assert re.fullmatch(r"\[model\] loading GGUF \(1/2\)\.\.\. done in \d+\.\d s", lines[1])
    assert re.fullmatch(r"\[model\] writing files \(2/2\)\.\.\. done in \d+\.\d s", lines[2])


def test_a_failing_stage_says_so_and_reraises() -> None:
    out = io.StringIO()
    progress = Progress(total=1, prefix="[tiny-model]", stream=out)
    with pytest.raises(ValueError):
        with progress.stage("reading tokenizer"):
            raise ValueError("boom")
    assert re.fullmatch(
        r"\[tiny-model\] reading tokenizer \(1/1\)\.\.\. failed after \d+\.\d s\n", out.getvalue()
    )


def test_default_stream_is_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    Progress(total=1).note("hello")
    captured = capsys.readouterr()
    assert captured.err == "[model] hello\n" and captured.out == ""
