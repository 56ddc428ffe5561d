"""Admission control: 429 when the model queue is full."""
