"""Captions from a ``transformers`` image-to-text model (BLIP-2 in the paper), for clips without a sidecar caption.

The model is given by hub id or local folder (``CurationConfig.caption_model``; the paper's captioner is
``Salesforce/blip2-opt-2.7b``). It is loaded with ``AutoProcessor`` and
``AutoModelForImageTextToText`` (BLIP, BLIP-2, GIT, vision-encoder-decoder and other captioners) and
decodes greedily, so the same frame always gets the same caption.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from imageconductor.curation.errors import BackendUnavailableError


class ImageCaptioner:
    """Caption RGB frames with one image-to-text model (greedy decoding, ``max_new_tokens`` at most)."""

    def __init__(self, model: str, device: str = "cpu", max_new_tokens: int = 30) -> None:
        try:
            from transformers import AutoModelForImageTextToText, AutoProcessor
        except ImportError as exc:
            raise BackendUnavailableError("captioning needs the `transformers` package") from exc
        try:
            self._processor = AutoProcessor.from_pretrained(model)
            self._model = AutoModelForImageTextToText.from_pretrained(model).to(device).eval()
        except (OSError, ValueError) as exc:
            raise BackendUnavailableError(f"cannot load caption model {model!r}: {exc}") from exc
        self._device = device
        self.max_new_tokens = max_new_tokens

    def __call__(self, frame: np.ndarray) -> str:
        """The caption of one (H, W, 3) uint8 RGB frame, stripped of special tokens and spaces."""
        import torch
        from PIL import Image

        inputs = self._processor(images=Image.fromarray(np.ascontiguousarray(frame)), return_tensors="pt")
        inputs = {name: value.to(self._device) for name, value in inputs.items()}
        with torch.inference_mode():
            ids = self._model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        return self._processor.batch_decode(ids, skip_special_tokens=True)[0].strip()


@lru_cache(maxsize=2)
def cached_captioner(model: str, device: str, max_new_tokens: int) -> ImageCaptioner:
    """One captioner per process and setting (the weights are loaded once, not per clip)."""
    return ImageCaptioner(model, device, max_new_tokens)


def check_caption_model(model: str) -> None:
    """Fail early when the named model's config cannot be found (nothing but the config is read)."""
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(model)
    except (OSError, ValueError) as exc:
        raise BackendUnavailableError(f"caption model {model!r} not found: {exc}") from exc


def clip_caption(frames: np.ndarray, captioner: ImageCaptioner) -> str:
    """The caption of a clip: that of its middle frame."""
    return captioner(frames[len(frames) // 2])
