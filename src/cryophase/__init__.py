"""cryophase: single-shot phase retrieval for cryo-EM with a latent conditional diffusion model.

The data flow is reflected in the sub-packages::

    specimens -> phase (truth) -> physics (expected counts) -> detector (counts)
    -> retrieval (classical) -> models/diffusion (learned) -> evaluation

Conventions and units are defined once, in :mod:`cryophase.conventions`.
"""

__version__ = "0.1.0"
