"""Runbooks: the engine that runs them step by step with a durable journal, and the
step library."""
