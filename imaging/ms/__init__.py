"""Measurement Sets and parts: reading, writing, checking, the part files and the per-part
partial images."""
