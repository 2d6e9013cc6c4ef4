"""Spectral-line building blocks: CASA channel ranges, uv-plane continuum subtraction,
moment maps and FITS cubes."""
