"""Clip generation: simulated clips with exact tracks, and the parallel job that writes them."""
