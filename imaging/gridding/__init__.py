"""Gridding and weighting: ducc0's wgridder and the CPU/GPU dispatch, imaging weights, the
Taylor-weighted images of multi-term MFS."""
