"""Request hygiene: body size, message and character bounds, max_tokens caps."""
