"""Peers of the queue benchmark; each runs in its own virtualenv (stdlib-only shared driver)."""
