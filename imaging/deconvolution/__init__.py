"""Deconvolution: the minor cycle's algorithms (Hogbom, Clark, multiscale; one and several
Taylor terms), the component lists, the FFT convolutions and the major-cycle loop's decision.
"""
