"""The request path's core, below every feature: the request context, the extension
protocols (policies, stream hooks, end-of-request observers), the generation pipeline,
the per-request result, and the HTTP glue every route and middleware shares.

It imports only ``serving.config``, ``serving.errors``, ``serving.engine`` (the engine
``Protocol``) and ``serving.observability``; no feature and no API surface.
"""
