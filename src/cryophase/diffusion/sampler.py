"""Few-step samplers: diffusers' DDIM (deterministic, eta = 0) and DPM-Solver++ (2nd order multistep)."""

from __future__ import annotations

from cryophase.diffusion.schedule import DiffusionConfig


def _ddim(config: DiffusionConfig) -> "DDIMScheduler":
    from diffusers import DDIMScheduler  # imported here: diffusers takes seconds to import

    return DDIMScheduler(**config.scheduler_kwargs(), clip_sample=False, set_alpha_to_one=False,
                         timestep_spacing="trailing")


def _dpm_solver(config: DiffusionConfig) -> "DPMSolverMultistepScheduler":
    from diffusers import DPMSolverMultistepScheduler

    return DPMSolverMultistepScheduler(**config.scheduler_kwargs(), algorithm_type="dpmsolver++", solver_order=2,
                                       timestep_spacing="trailing")


SAMPLERS = {"ddim": _ddim, "dpm-solver": _dpm_solver}


def make_sampler(name: str, config: DiffusionConfig, n_steps: int):
    """A fresh diffusers scheduler (they hold per-run state) with ``n_steps`` inference timesteps set."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose from {', '.join(SAMPLERS)}")
    if not 1 <= n_steps <= config.num_train_timesteps:
        raise ValueError(f"n_steps must be in [1, {config.num_train_timesteps}], got {n_steps}")
    scheduler = SAMPLERS[name](config)
    scheduler.set_timesteps(n_steps)
    return scheduler
