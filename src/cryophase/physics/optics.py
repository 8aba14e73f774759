"""Per-image microscope parameters, batched.

An :class:`Optics` holds one value per image for every parameter, as tensors of shape ``(B,)``, so a batch can
mix voltages, defocus values and pixel sizes. Units are in the field names; see :mod:`cryophase.conventions`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch


@dataclass(frozen=True)
class Optics:
    """Microscope and CTF parameters for a batch of images, each field a tensor of shape ``(B,)``.

    Attributes
    ----------
    voltage_kv : acceleration voltage, kV (rlnVoltage).
    cs_mm : spherical aberration, mm (rlnSphericalAberration).
    amplitude_contrast : amplitude-contrast fraction A in [0, 1) (rlnAmplitudeContrast).
    pixel_size_angstrom : pixel size at the specimen, Angstrom (rlnImagePixelSize).
    defocus_u_angstrom, defocus_v_angstrom : defocus along the astigmatism axes, Angstrom, positive is
        underfocus (rlnDefocusU, rlnDefocusV).
    defocus_angle_degrees : angle of the U axis from the image x axis, degrees (rlnDefocusAngle).
    phase_shift_degrees : phase-plate shift, degrees (rlnPhaseShift).
    b_factor_a2 : CTF B-factor envelope exp(-B k^2 / 4), A^2 (rlnCtfBfactor); 0 disables it.
    """

    voltage_kv: torch.Tensor
    cs_mm: torch.Tensor
    amplitude_contrast: torch.Tensor
    pixel_size_angstrom: torch.Tensor
    defocus_u_angstrom: torch.Tensor
    defocus_v_angstrom: torch.Tensor
    defocus_angle_degrees: torch.Tensor
    phase_shift_degrees: torch.Tensor
    b_factor_a2: torch.Tensor

    @classmethod
    def create(
        cls,
        *,
        defocus_u_angstrom,
        defocus_v_angstrom=None,
        defocus_angle_degrees=0.0,
        voltage_kv=300.0,
        cs_mm=2.7,
        amplitude_contrast=0.1,
        pixel_size_angstrom=3.5,
        phase_shift_degrees=0.0,
        b_factor_a2=0.0,
        batch_size: int | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> "Optics":
        """Build an :class:`Optics` from scalars or sequences, broadcasting every field to ``(B,)``."""
        if defocus_v_angstrom is None:
            defocus_v_angstrom = defocus_u_angstrom
        values = dict(
            voltage_kv=voltage_kv,
            cs_mm=cs_mm,
            amplitude_contrast=amplitude_contrast,
            pixel_size_angstrom=pixel_size_angstrom,
            defocus_u_angstrom=defocus_u_angstrom,
            defocus_v_angstrom=defocus_v_angstrom,
            defocus_angle_degrees=defocus_angle_degrees,
            phase_shift_degrees=phase_shift_degrees,
            b_factor_a2=b_factor_a2,
        )
        tensors = {k: torch.as_tensor(v, dtype=dtype, device=device).reshape(-1) for k, v in values.items()}
        n = batch_size or max(t.numel() for t in tensors.values())
        for k, t in tensors.items():
            if t.numel() not in (1, n):
                raise ValueError(f"Optics.{k} has {t.numel()} values but the batch has {n}")
            tensors[k] = t.expand(n).clone()
        optics = cls(**tensors)
        optics.validate()
        return optics

    def validate(self) -> None:
        """Raise ``ValueError`` for physically impossible values."""
        if (self.voltage_kv <= 0).any():
            raise ValueError("voltage_kv must be positive")
        if (self.pixel_size_angstrom <= 0).any():
            raise ValueError("pixel_size_angstrom must be positive")
        if ((self.amplitude_contrast < 0) | (self.amplitude_contrast >= 1)).any():
            raise ValueError("amplitude_contrast must be in [0, 1)")
        if (self.cs_mm < 0).any():
            raise ValueError("cs_mm must be non-negative")

    def __len__(self) -> int:
        return self.voltage_kv.shape[0]

    def __getitem__(self, index) -> "Optics":
        out = {}
        for f in fields(self):
            t = getattr(self, f.name)[index]
            out[f.name] = t.reshape(-1)
        return Optics(**out)

    def to(self, device=None, dtype=None) -> "Optics":
        return Optics(**{f.name: getattr(self, f.name).to(device=device, dtype=dtype) for f in fields(self)})

    def replace(self, **changes) -> "Optics":
        return replace(self, **changes)

    @staticmethod
    def cat(items: list["Optics"]) -> "Optics":
        return Optics(**{f.name: torch.cat([getattr(o, f.name) for o in items]) for f in fields(Optics)})

    @property
    def defocus_mean_angstrom(self) -> torch.Tensor:
        return 0.5 * (self.defocus_u_angstrom + self.defocus_v_angstrom)

    def as_dict(self) -> dict[str, list[float]]:
        return {f.name: getattr(self, f.name).tolist() for f in fields(self)}
