"""Fake lightning (see ../README)."""
