"""Robustness: malformed input never crashes or corrupts; training and writes survive kill -9."""
