"""``python -m serving.quality`` (also ``serving-quality``): run the quality check or make a reference."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from serving.quality.client import QualityClientError, run_prompt_set
from serving.quality.prompts import load_prompt_set
from serving.quality.report import render_text, summarize
from serving.quality.results import QualityRun


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m serving.quality",
        description="The operator's quality check: a prompt set with expected answers, greedy, "
        "against any OpenAI-compatible server; accuracy, agreement with a reference, latency.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="ask a server every prompt and report")
    run.add_argument("--base-url", required=True, help="OpenAI base URL, e.g. http://127.0.0.1:8000/v1")
    run.add_argument("--model", help="model id (default: the first one /v1/models lists)")
    run.add_argument("--api-key", help="Bearer key, when the server requires one")
    run.add_argument("--reference", type=Path, help="a run JSON (from `reference` or an earlier `run --save`)")
    run.add_argument("--save", type=Path, help="write this run's answers as JSON (a later reference)")
    run.add_argument("--concurrency", type=int, default=4)
    run.add_argument("--served-defaults", action="store_true",
                     help="send only model and messages (the server's sampling defaults and output cap)")
    run.add_argument("--repeat", type=int, default=1, help="asks per case (with --served-defaults)")
    run.add_argument("--min-accuracy", type=float, help="exit 1 if accuracy is below this fraction")
    run.add_argument("--min-exact", type=int, help="exit 1 if fewer answers equal the reference exactly")
    ref = sub.add_parser("reference", help="compute a reference run with transformers float32")
    ref.add_argument("--model-dir", type=Path, required=True, help="a local Hugging Face model folder")
    ref.add_argument("--model", default="reference", help="the model id to record")
    ref.add_argument("--save", type=Path, required=True, help="where to write the run JSON")
    for sub_parser in (run, ref):
        sub_parser.add_argument("--prompts", type=Path, help="prompt set YAML (default: the shipped set)")
        sub_parser.add_argument("--max-tokens", type=int, default=24)
        sub_parser.add_argument("--top-k", type=int, default=5, help="candidates per token for closeness")
        sub_parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; 0 when the gates (if any) pass, 1 when one fails, 2 on usage errors."""
    args = _parser().parse_args(argv)
    if args.command == "run" and args.reference and args.served_defaults:
        print("error: --reference compares greedy runs; drop --served-defaults", file=sys.stderr)
        return 2
    prompt_set = load_prompt_set(args.prompts)
    if args.command == "reference":
        from serving.quality.reference import reference_run

        run = reference_run(args.model_dir, prompt_set, model=args.model, max_tokens=args.max_tokens, top_k=args.top_k)
        reference = None
    else:
        reference = QualityRun.load(args.reference) if args.reference else None
        try:
            run = run_prompt_set(
                args.base_url, prompt_set, model=args.model, max_tokens=args.max_tokens,
                top_k=args.top_k, concurrency=args.concurrency, api_key=args.api_key,
                served_defaults=args.served_defaults, repeat=args.repeat,
            )
        except QualityClientError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if args.save:
        run.save(args.save)
    summary = summarize(run, prompt_set, reference)
    print(json.dumps(summary.to_json(), indent=2, default=str) if args.json else render_text(summary, run))
    failed = []
    if getattr(args, "min_accuracy", None) is not None and summary.accuracy < args.min_accuracy:
        failed.append(f"accuracy {summary.accuracy:.3f} < {args.min_accuracy}")
    if getattr(args, "min_exact", None) is not None:
        if summary.exact is None:
            print("error: --min-exact needs --reference", file=sys.stderr)
            return 2
        if summary.exact < args.min_exact:
            failed.append(f"exact agreement {summary.exact} < {args.min_exact}")
    for reason in failed:
        print(f"gate failed: {reason}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
