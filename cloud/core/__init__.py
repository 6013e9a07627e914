"""The predictive core: pure, vectorized numpy kernels over whole fleets (no I/O, no clock)."""
