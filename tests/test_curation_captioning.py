"""The captioning stage, with a tiny randomly initialised BLIP model built and saved by the test (no download)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from imageconductor.curation.captioning import ImageCaptioner, check_caption_model
from imageconductor.curation.clip import center_crop
from imageconductor.curation.config import DEFAULT_CAPTION_MODEL, CurationConfig
from imageconductor.curation.decode import decode_video
from imageconductor.curation.errors import BackendUnavailableError
from imageconductor.curation.inputs import InputItem
from imageconductor.curation.pipeline import check_backends
from imageconductor.curation.stages import analyse_input
from imageconductor.synthetic import write_raw_video
from imageconductor.video_io import decode_mp4_bytes

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "a", "red", "star", "moves", "left", "right"]


@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory) -> Path:
    """A BLIP captioner with a 12-word vocabulary and 16-wide layers, saved like a hub checkpoint."""
    from transformers import BertTokenizerFast, BlipConfig, BlipForConditionalGeneration, BlipProcessor
    from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil

    folder = tmp_path_factory.mktemp("tiny-blip")
    tokenizer = BertTokenizerFast(vocab={word: i for i, word in enumerate(WORDS)}, bos_token="[DEC]")
    layers = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}
    config = BlipConfig(
        vision_config={**layers, "image_size": 32, "patch_size": 16},
        text_config={
            **layers,
            "vocab_size": len(WORDS),
            "encoder_hidden_size": 16,
            "bos_token_id": WORDS.index("[DEC]"),
            "pad_token_id": 0,
            "sep_token_id": WORDS.index("[SEP]"),
            "max_position_embeddings": 64,
        },
        projection_dim=16,
    )
    torch.manual_seed(0)
    BlipForConditionalGeneration(config).eval().save_pretrained(folder)
    image_processor = BlipImageProcessorPil(size={"height": 32, "width": 32})
    BlipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_blip2(tmp_path_factory) -> Path:
    """A BLIP-2 captioner (the paper's architecture: vision encoder, Q-Former, OPT) with 16-wide layers."""
    from transformers import BertTokenizerFast, Blip2Config, Blip2ForConditionalGeneration, Blip2Processor
    from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil

    folder = tmp_path_factory.mktemp("tiny-blip2")
    words = [*WORDS[:5], "<image>", *WORDS[6:]]
    tokenizer = BertTokenizerFast(
        vocab={word: i for i, word in enumerate(words)}, bos_token="[CLS]", eos_token="[SEP]"
    )
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    layers = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}
    opt = {"model_type": "opt", "vocab_size": len(words), "hidden_size": 16, "ffn_dim": 32}
    opt.update(num_hidden_layers=1, num_attention_heads=2, word_embed_proj_dim=16, max_position_embeddings=64)
    config = Blip2Config(
        vision_config={**layers, "image_size": 32, "patch_size": 16},
        qformer_config={**layers, "encoder_hidden_size": 16, "vocab_size": 20},
        text_config={**opt, "bos_token_id": 2, "eos_token_id": 3, "pad_token_id": 0},
        num_query_tokens=4,
        image_token_index=words.index("<image>"),
    )
    torch.manual_seed(0)
    Blip2ForConditionalGeneration(config).eval().save_pretrained(folder)
    image_processor = BlipImageProcessorPil(size={"height": 32, "width": 32})
    Blip2Processor(image_processor=image_processor, tokenizer=tokenizer, num_query_tokens=4).save_pretrained(
        folder
    )
    return folder


def test_captioner_runs_the_papers_blip2_architecture(tiny_blip2: Path) -> None:
    from PIL import Image
    from transformers import Blip2ForConditionalGeneration, Blip2Processor

    frame = np.random.default_rng(1).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    caption = ImageCaptioner(str(tiny_blip2), max_new_tokens=6)(frame)
    processor = Blip2Processor.from_pretrained(tiny_blip2)
    model = Blip2ForConditionalGeneration.from_pretrained(tiny_blip2).eval()
    with torch.inference_mode():
        ids = model.generate(
            **processor(images=Image.fromarray(frame), return_tensors="pt"), max_new_tokens=6
        )
    assert caption and caption == processor.batch_decode(ids, skip_special_tokens=True)[0].strip()
    assert 1 <= len(caption.split()) <= 6


def _reference_caption(folder: Path, frame: np.ndarray) -> str:
    """What the saved model generates greedily for ``frame``, computed without the stage's code."""
    from PIL import Image
    from transformers import BlipForConditionalGeneration, BlipProcessor

    processor = BlipProcessor.from_pretrained(folder)
    model = BlipForConditionalGeneration.from_pretrained(folder).eval()
    with torch.inference_mode():
        ids = model.generate(
            **processor(images=Image.fromarray(frame), return_tensors="pt"), max_new_tokens=30
        )
    words = [WORDS[i] for i in ids[0].tolist() if not WORDS[i].startswith("[")]
    return " ".join(words)


def test_captioner_gives_the_models_greedy_caption(tiny_blip: Path) -> None:
    frame = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    captioner = ImageCaptioner(str(tiny_blip))
    caption = captioner(frame)
    assert caption and caption == _reference_caption(tiny_blip, frame)
    assert set(caption.split()) <= set(WORDS[6:])
    assert captioner(frame) == caption  # greedy: the same frame, the same caption
    assert len(ImageCaptioner(str(tiny_blip), max_new_tokens=1)(frame).split()) <= 1


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailableError, match="not found"):
        check_caption_model(str(tmp_path / "no-such-model"))
    with pytest.raises(BackendUnavailableError, match="caption model"):
        check_backends(CurationConfig(caption_model=str(tmp_path / "no-such-model")))
    assert DEFAULT_CAPTION_MODEL == "Salesforce/blip2-opt-2.7b" and CurationConfig().caption_model is None


def test_stage_captions_clips_without_sidecar_and_sidecar_wins(tiny_blip: Path, tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    write_raw_video(video, seed=3, num_scenes=1, frames_per_scene=(40, 40))
    config = CurationConfig(caption_model=str(tiny_blip), num_frames=8, stride_max=2)
    result = analyse_input(InputItem("v", str(video)), config)
    record = result.record
    assert record["status"] == "candidate" and record["caption_source"] == "model"
    # the caption is that of the cropped window's middle frame, before encoding
    decoded = decode_video(str(video), config.short_side, config.width, config.height)
    window = decoded.frames[record["frame_indices"]]
    cropped, _ = center_crop(window, config.width, config.height)
    assert record["caption"] == _reference_caption(tiny_blip, cropped[len(cropped) // 2]) != ""
    assert decode_mp4_bytes(result.clip).shape[0] == config.num_frames
    sidecar = analyse_input(InputItem("v", str(video), caption="a hand-written caption"), config).record
    assert sidecar["caption"] == "a hand-written caption" and sidecar["caption_source"] == "sidecar"
    off = analyse_input(InputItem("v", str(video)), CurationConfig(num_frames=8, stride_max=2)).record
    assert off["caption"] == "" and off["caption_source"] == "none"
