"""Simulated observations: the VLA, the sky model, the MS simulator."""
