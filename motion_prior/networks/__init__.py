"""Networks: the torch modules: layers, the frame encoder, poke conditioning, the text encoder,
the trajectory VAE (Stage 1) and the latent flow network (Stage 2)."""
