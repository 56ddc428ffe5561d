"""An OpenAI-compatible LLM serving stack on Ray Serve and vLLM."""

__version__ = "0.1.0"
