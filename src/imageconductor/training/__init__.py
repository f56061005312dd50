"""Training: the paper's stages (motion ControlNet, camera LoRA, object LoRA + orthogonal loss) and the
from-scratch stage 0 of the embedded default model.

Entry points::

    from imageconductor.training import TrainingConfig, run_training

    config = TrainingConfig.load("configs/train_camera.yaml", ["max_steps=100"])
    result = run_training(config, resume="auto")     # result.final_dir: a complete model folder

Command line: ``imageconductor train stage --config cfg.yaml [--resume]`` and
``imageconductor train default --out DIR``. See ``docs/training.md``.
"""

from __future__ import annotations

from imageconductor.training.config import ConfigError, TrainingConfig
from imageconductor.training.run import TrainingResult, run_training

__all__ = ["ConfigError", "TrainingConfig", "TrainingResult", "run_training"]
