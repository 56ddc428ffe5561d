"""API keys: the keys file, the key store with hot reload, and the auth policy."""
