"""Training losses: the diffusion ε-MSE (paper Eq. 1/3) and the orthogonal loss between LoRA adapters (Eq. 4).

The paper's orthogonal loss is ``E_i ||I − W_cam,i W_traj,i^T||²`` over "the linear layer weights" of the
two LoRAs. A LoRA update is a product ``ΔW = B A`` of a down-projection ``A`` (rank × in) and an
up-projection ``B`` (out × rank), so the formula needs an interpretation. Ours:

- ``W`` is one LoRA factor per wrapped layer, flattened to ``rank × fan`` (``factor="lora_A"``: the
  down-projection, fan = in·kernel; ``factor="lora_B"``: the transposed up-projection, fan = out), so
  ``W_cam W_obj^T`` is a small ``rank × rank`` matrix, cheap for every layer.
- ``form="cross"`` (default): ``||Ŵ_cam Ŵ_obj^T||_F²`` with row-normalised factors — the squared cosines
  between every camera direction and every object direction. Zero exactly when the two adapters read
  (``lora_A``) or write (``lora_B``) orthogonal subspaces, i.e. the "independence" the paper asks for;
  normalising the rows means it cannot be lowered by merely shrinking the object LoRA.
- ``form="identity"``: the paper's literal ``||I − W_cam W_obj^T||_F²`` (rectangular identity when the
  ranks differ), for reproducing the formula as printed.
- ``form="stacked"``: ``||I − W Wᵀ||_F²`` with ``W = [W_cam; W_obj]`` — rows orthonormal within and across
  adapters (the only reading in which an identity target and orthogonality agree).

The camera factor is always detached (stop-grad, Eq. 2), so the gradient reaches only the object LoRA.
The loss is the mean over layers that carry both adapters (``E_i``); ``||·||²`` is the squared Frobenius norm.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from peft.tuners.lora import LoraLayer
from torch import nn

from imageconductor.training.config import ORTHO_FACTORS, ORTHO_FORMS


def diffusion_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the predicted and the true noise, computed in float32."""
    if prediction.shape != target.shape:
        raise ValueError(f"prediction shape {tuple(prediction.shape)} != target shape {tuple(target.shape)}")
    return F.mse_loss(prediction.float(), target.float(), reduction="mean")


def lora_factor_pairs(
    model: nn.Module,
    first_adapter: str = "camera",
    second_adapter: str = "object",
    factor: str = "lora_A",
) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
    """Yield ``(layer name, W_first, W_second)`` for every LoRA layer holding both adapters.

    Each ``W`` is the chosen factor as a ``rank × fan`` matrix (a view of the live parameter, so gradients
    flow through it).
    """
    if factor not in ORTHO_FACTORS:
        raise ValueError(f"factor must be one of {list(ORTHO_FACTORS)}, got {factor!r}")
    for name, module in model.named_modules():
        if not isinstance(module, LoraLayer):
            continue
        factors = getattr(module, factor)
        if first_adapter not in factors or second_adapter not in factors:
            continue
        yield (
            name,
            _as_rank_rows(factors[first_adapter].weight, factor),
            _as_rank_rows(factors[second_adapter].weight, factor),
        )


def orthogonal_loss(
    model: nn.Module,
    camera_adapter: str = "camera",
    object_adapter: str = "object",
    form: str = "cross",
    factor: str = "lora_A",
) -> torch.Tensor:
    """Paper Eq. 4 under the interpretation in this module's docstring; mean over matching layers.

    Raises ``ValueError`` when no layer carries both adapters (a misnamed adapter would otherwise make
    the loss silently zero).
    """
    if form not in ORTHO_FORMS:
        raise ValueError(f"form must be one of {list(ORTHO_FORMS)}, got {form!r}")
    terms = []
    for _, camera, obj in lora_factor_pairs(model, camera_adapter, object_adapter, factor):
        terms.append(orthogonality_term(camera.detach(), obj, form))
    if not terms:
        raise ValueError(
            f"no LoRA layer carries both adapters {camera_adapter!r} and {object_adapter!r}; "
            "cannot compute the orthogonal loss"
        )
    return torch.stack(terms).mean()


def orthogonality_term(camera: torch.Tensor, obj: torch.Tensor, form: str) -> torch.Tensor:
    """The per-layer value for two ``rank × fan`` factors (see the module docstring)."""
    camera = camera.float()
    obj = obj.float()
    if form == "cross":
        product = F.normalize(camera, dim=1) @ F.normalize(obj, dim=1).T
        return product.pow(2).sum()
    if form == "identity":
        product = camera @ obj.T
        eye = torch.eye(*product.shape, dtype=product.dtype, device=product.device)
        return (eye - product).pow(2).sum()
    if form == "stacked":
        stacked = torch.cat([camera, obj], dim=0)
        gram = stacked @ stacked.T
        eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
        return (eye - gram).pow(2).sum()
    raise ValueError(f"form must be one of {list(ORTHO_FORMS)}, got {form!r}")


def _as_rank_rows(weight: torch.Tensor, factor: str) -> torch.Tensor:
    # lora_A: (rank, in, *kernel) -> (rank, in·kernel); lora_B: (out, rank, *1) -> (rank, out).
    if factor == "lora_A":
        return weight.reshape(weight.shape[0], -1)
    return weight.reshape(weight.shape[0], weight.shape[1]).T
