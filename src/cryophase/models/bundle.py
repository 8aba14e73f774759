"""A weights folder: ``vae``, ``denoiser`` and ``regression`` models side by side, each .safetensors + .json.

The pixel-space peer of the latent model (``pixel_denoiser``) is saved the same way, with its
:class:`~cryophase.models.pixel.PixelCodecConfig` in the JSON; the shipped folder has one too.

The JSON of each model also records the grid it was trained on (box size and pixel size) and, for models that
consume an iterative estimate, the conditioning method, so inference uses exactly what training used.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from cryophase.diffusion.schedule import DiffusionConfig
from cryophase.models.conditioning import ConditioningConfig
from cryophase.models.pixel import PixelCodec, PixelCodecConfig
from cryophase.models.regression import PhaseRegressor, RegressionConfig
from cryophase.models.unet import UNet, UNetConfig
from cryophase.models.vae import PhaseVAE, VAEConfig
from cryophase.models.weights import WeightsError, config_from_dict, load_model, save_model

VAE_NAME = "vae"
DENOISER_NAME = "denoiser"
REGRESSION_NAME = "regression"
PIXEL_DENOISER_NAME = "pixel_denoiser"


@dataclass
class ModelGrid:
    """The image grid a model works on: ``image_size`` pixels square at ``pixel_size_angstrom``."""

    image_size: int
    pixel_size_angstrom: float


def default_weights_folder() -> Path:
    """The weights shipped with the package (``cryophase/weights/default``)."""
    return Path(str(resources.files("cryophase") / "weights" / "default"))


def resolve_weights_folder(folder: str | Path | None) -> Path:
    path = default_weights_folder() if folder is None else Path(folder)
    if folder is None and not (path / f"{DENOISER_NAME}.json").is_file():
        raise WeightsError(f"{path}: no shipped weights in this installation; train them with "
                           "`cryophase train vae|ldm|regression` and pass the weights folder")
    return path


def save_vae(folder: Path, vae: PhaseVAE, grid: ModelGrid) -> None:
    save_model(folder, VAE_NAME, "vae", vae, vae.config, {"grid": asdict(grid)})


def load_vae(folder: Path) -> tuple[PhaseVAE, ModelGrid]:
    vae, meta = load_model(folder, VAE_NAME, "vae", VAEConfig, PhaseVAE)
    return vae, ModelGrid(**meta["extra"]["grid"])


def save_denoiser(folder: Path, denoiser: UNet, diffusion: DiffusionConfig, condition_method: str,
                  grid: ModelGrid, conditioning: ConditioningConfig | None = None) -> None:
    conditioning = conditioning if conditioning is not None else ConditioningConfig()
    save_model(folder, DENOISER_NAME, "denoiser", denoiser, denoiser.config,
               {"grid": asdict(grid), "diffusion": asdict(diffusion), "condition_method": condition_method,
                "conditioning": asdict(conditioning)})


def load_denoiser(folder: Path) -> tuple[UNet, DiffusionConfig, str, ModelGrid, ConditioningConfig]:
    """The latent denoiser, its noise schedule, conditioning method, grid and condition channels, loaded strictly.

    Weights saved before the ``conditioning`` entry existed were conditioned on ``E(iterative)`` alone.
    """
    folder = Path(folder)
    unet, meta = load_model(folder, DENOISER_NAME, "denoiser", UNetConfig, UNet)
    extra, where = meta["extra"], folder / f"{DENOISER_NAME}.json"
    diffusion = config_from_dict(DiffusionConfig, extra["diffusion"], where)
    conditioning = config_from_dict(ConditioningConfig, extra.get("conditioning", {}), where)
    return unet, diffusion, extra["condition_method"], ModelGrid(**extra["grid"]), conditioning


def save_pixel_denoiser(folder: Path, denoiser: UNet, codec: PixelCodec, diffusion: DiffusionConfig,
                        condition_method: str, grid: ModelGrid) -> None:
    save_model(folder, PIXEL_DENOISER_NAME, "pixel_denoiser", denoiser, denoiser.config,
               {"grid": asdict(grid), "diffusion": asdict(diffusion), "condition_method": condition_method,
                "codec": asdict(codec.config)})


def load_pixel_denoiser(folder: Path) -> tuple[PixelCodec, UNet, DiffusionConfig, str, ModelGrid]:
    """The pixel-space peer: codec, denoiser, noise schedule, conditioning method and grid, loaded strictly."""
    folder = Path(folder)
    unet, meta = load_model(folder, PIXEL_DENOISER_NAME, "pixel_denoiser", UNetConfig, UNet)
    extra, where = meta["extra"], folder / f"{PIXEL_DENOISER_NAME}.json"
    diffusion = config_from_dict(DiffusionConfig, extra["diffusion"], where)
    codec = PixelCodec(config_from_dict(PixelCodecConfig, extra["codec"], where))
    if unet.config.in_channels != 2 or unet.config.out_channels != 1:
        raise WeightsError(f"{where}: a pixel-space denoiser takes 2 channels [phase_t, condition] and returns 1, "
                           f"this one {unet.config.in_channels} -> {unet.config.out_channels}")
    return codec, unet, diffusion, extra["condition_method"], ModelGrid(**extra["grid"])


def save_regressor(folder: Path, regressor: PhaseRegressor, condition_method: str, grid: ModelGrid) -> None:
    save_model(folder, REGRESSION_NAME, "regression", regressor, regressor.config,
               {"grid": asdict(grid), "condition_method": condition_method})


def load_regressor(folder: Path) -> tuple[PhaseRegressor, str, ModelGrid]:
    reg, meta = load_model(folder, REGRESSION_NAME, "regression", RegressionConfig, PhaseRegressor)
    return reg, meta["extra"]["condition_method"], ModelGrid(**meta["extra"]["grid"])


def denoiser_input_channels(vae: PhaseVAE, conditioning: ConditioningConfig) -> int:
    """Input channels of a latent denoiser over ``vae``'s codes: ``z_t`` and the condition channels."""
    c = vae.config.latent_channels
    return c + conditioning.n_channels(c, vae.config.downsampling_factor)


def check_denoiser_fits_vae(vae: PhaseVAE, denoiser: UNet, conditioning: ConditioningConfig, folder: Path) -> None:
    wanted = denoiser_input_channels(vae, conditioning)
    if denoiser.config.in_channels != wanted or denoiser.config.out_channels != vae.config.latent_channels:
        raise WeightsError(f"{Path(folder) / (DENOISER_NAME + '.json')}: the denoiser maps "
                           f"{denoiser.config.in_channels} -> {denoiser.config.out_channels} channels, but the VAE's "
                           f"{vae.config.latent_channels}-channel codes with {conditioning} need {wanted} -> "
                           f"{vae.config.latent_channels}; the VAE and denoiser come from different runs")


def check_same_grid(a: ModelGrid, b: ModelGrid, folder: Path) -> None:
    if a != b:
        raise WeightsError(f"{folder}: the VAE was trained on {a} but the denoiser on {b}")
