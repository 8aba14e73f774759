"""``pixel-diffusion``: the pixel-space peer of ``ldm`` as a reconstructor (for cost and quality comparisons).

Everything but the model is ``ldm``'s: the same conditioning method, grid mapping, pipeline and sampler; the codec
is the identity :class:`~cryophase.models.pixel.PixelCodec`, so the denoiser works on the 64 x 64 phase itself.
The weights shipped with the package (``pixel_denoiser.*`` beside the default ``ldm`` weights) were trained by
``cryophase train pixel`` on the same data and CPU budget as the latent model (``docs/model-card.md``); train
your own with ``cryophase train pixel --out RUN`` and pass ``RUN/weights``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from cryophase.models.bundle import PIXEL_DENOISER_NAME, default_weights_folder, load_pixel_denoiser
from cryophase.models.weights import WeightsError
from cryophase.pipeline import LatentPhasePipeline
from cryophase.retrieval.base import register
from cryophase.retrieval.ldm import LatentDiffusionReconstructor


@register("pixel-diffusion")
@dataclass
class PixelDiffusionReconstructor(LatentDiffusionReconstructor):
    """Options as for ``ldm``; ``weights`` is a folder with pixel_denoiser.safetensors + .json (None: shipped)."""

    name: ClassVar[str] = "pixel-diffusion"

    def __post_init__(self):
        folder = default_weights_folder() if self.weights is None else self.weights
        if self.weights is None and not (folder / f"{PIXEL_DENOISER_NAME}.json").is_file():
            raise WeightsError(f"{folder}: no shipped pixel-diffusion weights in this installation; train them with "
                               f"`cryophase train pixel --out RUN` and pass RUN/weights")
        codec, denoiser, diffusion, trained_condition, self.grid = load_pixel_denoiser(folder)
        self._use(folder, LatentPhasePipeline(codec, denoiser, diffusion), trained_condition)
