"""The operator's quality check: a shipped prompt set run against any OpenAI-compatible server.

``python -m serving.quality run --base-url URL`` prints accuracy (expected answers
found), agreement with a reference run (exact, and close as vLLM's tests define it:
at the first divergence each side's token is in the other's top-k) and latency, as
text and JSON. ``python -m serving.quality reference --model-dir DIR`` computes the
reference with transformers in float32 from a model folder.
"""
