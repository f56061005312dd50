"""Training: the paper's stages (motion ControlNet, camera LoRA, object LoRA + orthogonal loss) and the
from-scratch stage 0 of the embedded default model.

Entry points::

    from imageconductor.training import TrainingConfig, run_training

    config = TrainingConfig.load("configs/train_camera.yaml", ["max_steps=100"])
    result = run_training(config, resume="auto")     # result.final_dir: a complete model folder

Command line: ``imageconductor train --config cfg.yaml [--resume]`` and
``python -m imageconductor.training.make_default --out DIR``. See ``docs/training.md``.
"""

from __future__ import annotations

from imageconductor.training.config import ConfigError, TrainingConfig

__all__ = ["ConfigError", "TrainingConfig", "TrainingResult", "run_training"]


def __getattr__(name: str):
    # Keep `import imageconductor.training` light: the training machinery loads on first use.
    if name in ("run_training", "TrainingResult"):
        from imageconductor.training import run

        return getattr(run, name)
    raise AttributeError(f"module 'imageconductor.training' has no attribute {name!r}")
