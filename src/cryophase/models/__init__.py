"""Learned models: the phase VAE, the conditional latent denoiser and the supervised regression peer.

Models hold weights only; noise schedules live in :mod:`cryophase.diffusion` and the encode -> sample -> decode
chain in :mod:`cryophase.pipeline`. Weights are saved and loaded strictly by :mod:`cryophase.models.weights`.
"""
