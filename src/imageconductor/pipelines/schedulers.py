"""Samplers by name: diffusers schedulers built from a model's own scheduler config.

A model folder ships one scheduler (DDIM with the released settings for the official weights,
v-prediction with zero-terminal-SNR betas and "trailing" timesteps for the embedded default model).
:func:`make_scheduler` builds another solver from that config the way diffusers does
(``SomeScheduler.from_config(config, ...)``) and carries over what belongs to the *model* — its noise
schedule (betas, ``rescale_betas_zero_snr``), its ``prediction_type``, the timestep spacing and offset —
so every solver integrates the same model.

One exception: the released DDIM's "leading" spacing becomes "trailing" for the other solvers. Under
"leading" an N-step run starts below the last training timestep, and DPM-Solver++ and UniPC divide their
"leading" grid by N + 1: they start at t = 951 for 25 and for 50 steps and at t = 901 for 100 (DDIM at
961, 981, 991), so their results stay away from a fine DDIM solution however many steps they take.
"trailing" starts every run at t = 999.
Combinations a solver cannot sample correctly raise ValueError instead of producing garbage.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DEFAULT_SCHEDULER",
    "SCHEDULERS",
    "SCHEDULER_NAMES",
    "SchedulerSpec",
    "check_scheduler",
    "check_scheduler_name",
    "make_scheduler",
    "max_inference_steps",
    "scheduler_name",
]


@dataclass(frozen=True)
class SchedulerSpec:
    """One named sampler: the diffusers scheduler class and the settings that make it this sampler."""

    class_name: str
    description: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    #: prediction types its ``step`` implements.
    prediction_types: tuple[str, ...] = ("epsilon", "v_prediction", "sample")
    #: whether it takes the ``eta`` of DDIM.
    takes_eta: bool = False
    #: whether it implements dynamic thresholding (``thresholding=True`` in a config).
    thresholding: bool = False
    #: whether it adds fresh noise at every step (an SDE sampler: it does not solve the same ODE as DDIM).
    stochastic: bool = False
    #: whether it suits zero-terminal-SNR betas (``rescale_betas_zero_snr``).
    zero_terminal_snr: bool = True


_DPM_SETTINGS = {
    "algorithm_type": "dpmsolver++",
    "solver_order": 2,
    "solver_type": "midpoint",
    "lower_order_final": True,
    "euler_at_final": False,
    "final_sigmas_type": "zero",
}

#: The samplers offered, by name. Each one's ``settings`` are set whatever the config it is built from
#: says, so switching from one name to another never carries a setting of the first one over.
SCHEDULERS: dict[str, SchedulerSpec] = {
    "ddim": SchedulerSpec(
        "DDIMScheduler", "DDIM (the released sampler; the default)", takes_eta=True, thresholding=True
    ),
    "dpm++2m": SchedulerSpec(
        "DPMSolverMultistepScheduler",
        "DPM-Solver++(2M), second-order multistep",
        {**_DPM_SETTINGS, "use_karras_sigmas": False},
        thresholding=True,
    ),
    "dpm++2m-karras": SchedulerSpec(
        "DPMSolverMultistepScheduler",
        "DPM-Solver++(2M) on Karras et al.'s noise levels",
        {**_DPM_SETTINGS, "use_karras_sigmas": True},
        thresholding=True,
        zero_terminal_snr=False,
    ),
    "unipc": SchedulerSpec(
        "UniPCMultistepScheduler",
        "UniPC, second-order predictor-corrector (bh2)",
        {
            "solver_order": 2,
            "solver_type": "bh2",
            "predict_x0": True,
            "lower_order_final": True,
            "final_sigmas_type": "zero",
            "use_karras_sigmas": False,
        },
        thresholding=True,
    ),
    "euler": SchedulerSpec(
        "EulerDiscreteScheduler",
        "Euler (Karras et al.'s first-order ODE step)",
        {
            "use_karras_sigmas": False,
            "interpolation_type": "linear",
            "timestep_type": "discrete",
            "final_sigmas_type": "zero",
        },
    ),
    "euler-a": SchedulerSpec(
        "EulerAncestralDiscreteScheduler",
        "Euler ancestral (adds fresh noise at every step)",
        prediction_types=("epsilon", "v_prediction"),
        stochastic=True,
    ),
}

#: The names :func:`make_scheduler` accepts, in the order they are offered.
SCHEDULER_NAMES: tuple[str, ...] = tuple(SCHEDULERS)
#: The scheduler the pipeline samples with unless told otherwise.
DEFAULT_SCHEDULER = "ddim"

#: Settings of the model's noise schedule that every solver keeps, whatever its own defaults are
#: (diffusers' ``from_config`` would otherwise replace values that were defaults of the source class).
MODEL_SCHEDULE_KEYS = (
    "num_train_timesteps",
    "beta_start",
    "beta_end",
    "beta_schedule",
    "trained_betas",
    "prediction_type",
    "rescale_betas_zero_snr",
    "timestep_spacing",
    "steps_offset",
)


def check_scheduler_name(name: Any) -> str:
    """``name`` (case and surrounding spaces ignored) if it names a scheduler, else ValueError listing the
    choices."""
    key = name.strip().lower() if isinstance(name, str) else None
    if key not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULER_NAMES)}")
    return key


def check_scheduler(name: str, config: Mapping[str, Any]) -> str:
    """The checked name when scheduler ``name`` can sample a model whose scheduler config is ``config``;
    ValueError naming the setting that rules it out otherwise. Needs no diffusers import."""
    key = check_scheduler_name(name)
    if key == "ddim":
        return key
    spec = SCHEDULERS[key]
    prediction = config.get("prediction_type", "epsilon")
    if prediction not in spec.prediction_types:
        raise ValueError(
            f"scheduler {key!r} does not sample {prediction!r} models (it takes "
            f"{', '.join(spec.prediction_types)}); use ddim"
        )
    if prediction == "epsilon" and config.get("rescale_betas_zero_snr", False):
        # At zero terminal SNR the last noisy sample holds no signal: x0 = (x - σ ε) / α with α -> 0;
        # these solvers clamp α to 2**-12 and so amplify the model's error 4096-fold.
        raise ValueError(
            f"scheduler {key!r} cannot sample an epsilon-prediction model with zero-terminal-SNR betas "
            "(rescale_betas_zero_snr); use ddim, or a v_prediction model"
        )
    if config.get("rescale_betas_zero_snr", False) and not spec.zero_terminal_snr:
        # Karras et al.'s levels run from the largest sigma, here the clamped 4096 of the last timestep:
        # on the default model 10 steps land further from a fine DDIM run than 5 do.
        raise ValueError(
            f"scheduler {key!r} does not suit zero-terminal-SNR betas (rescale_betas_zero_snr): its noise "
            "levels start at the clamped sigma 4096 of the last timestep and spend the first steps where "
            "the input holds no signal; use dpm++2m"
        )
    unsupported = [
        setting
        for setting, supported in (("clip_sample", False), ("thresholding", spec.thresholding))
        if config.get(setting, False) and not supported
    ]
    if unsupported:
        raise ValueError(
            f"the model's scheduler sets {unsupported[0]}=True, which scheduler {key!r} does not do; use ddim"
        )
    return key


def make_scheduler(name: str, config: Mapping[str, Any], **overrides: Any) -> Any:
    """A fresh diffusers scheduler ``name`` built from the scheduler config ``config`` (a pipeline's
    ``scheduler.config``), keeping the model's noise schedule, prediction type and timestep spacing
    ("leading" becomes "trailing" for the solvers other than DDIM; see the module's docstring).
    ``overrides`` are further settings of the diffusers class (``timestep_spacing="leading"``, ...).

    Raises ValueError for an unknown name (listing the choices) or a combination the scheduler cannot
    sample (see :func:`check_scheduler`).
    """
    import diffusers

    key = check_scheduler(name, {**config, **overrides})
    spec = SCHEDULERS[key]
    schedule = {name: config[name] for name in MODEL_SCHEDULE_KEYS if name in config}
    if key != "ddim" and schedule.get("timestep_spacing", "leading") == "leading":
        schedule["timestep_spacing"] = "trailing"
    scheduler_class = getattr(diffusers, spec.class_name)
    return scheduler_class.from_config(dict(config), **{**schedule, **spec.settings, **overrides})


def scheduler_name(scheduler: Any) -> str | None:
    """The name of :data:`SCHEDULERS` that ``scheduler`` (an instance) is, or None for another one."""
    config = getattr(scheduler, "config", {})
    for name, spec in SCHEDULERS.items():
        if type(scheduler).__name__ == spec.class_name and all(
            config.get(key) == value for key, value in spec.settings.items()
        ):
            return name
    return None


def max_inference_steps(config: Mapping[str, Any]) -> int:
    """The most sampling steps a scheduler of ``config`` can take: its training timesteps, less its
    ``steps_offset`` on a "leading" grid (the released DDIM: 1000 steps there would end on timestep 1000,
    outside the schedule)."""
    total = int(config.get("num_train_timesteps", 1000))
    if config.get("timestep_spacing", "leading") == "leading":
        total -= int(config.get("steps_offset") or 0)
    return max(total, 1)
