"""The served model's files: resolve a model folder, or build the default/tiny one once.

- ``prepare``: ``resolve_model_path(settings.model)`` and the default model's conversion.
- ``tiny``: ``make_tiny_model(dest)``, a tiny random Llama for integration tests.
- ``folder``: build-once folders (temp dir, marker written last, atomic rename, lock).
- ``hf_files``: writers of tokenizer/config/weights files shared by both builders.
"""
