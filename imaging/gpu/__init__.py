"""The GPU path (CuPy): device choice, gridding, kernels, the minor cycle, NVML monitoring.
Importing it never imports CuPy."""
