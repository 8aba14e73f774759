"""Training the VAE, the latent denoiser and the regression peer (``cryophase train vae|ldm|regression``)."""
