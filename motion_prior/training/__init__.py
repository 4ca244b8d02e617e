"""Training: the shared training loop, poke sampling, and the recipes of the three stages (VAE,
decoder fine-tuning, flow)."""
