"""A synthetic raw-video corpus for tests, benchmarks and trying the pipeline (no downloads needed)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from imageconductor.synthetic import write_raw_video

# The bad files a corpus can include, with the drop reason the pipeline must report for each.
BAD_FILES = {
    "zero_bytes.mp4": "empty_file",
    "not_a_video.mp4": "not_a_video",
    "notes.bin": "not_a_video",
    "truncated.mp4": "corrupt_or_truncated",
    "corrupt.mp4": "corrupt_or_truncated",
}


@dataclass
class DemoCorpus:
    """Where the corpus is, its JSONL manifest, the cut frames of each good video, and the bad files."""

    folder: Path
    manifest: Path
    cut_frames: dict[str, list[int]] = field(default_factory=dict)
    expected_reasons: dict[str, str] = field(default_factory=dict)


def write_demo_corpus(
    folder: str | Path,
    num_videos: int = 4,
    seed: int = 0,
    num_scenes: int = 2,
    frames_per_scene: tuple[int, int] = (40, 60),
    bad_files: bool = False,
    crf: int = 18,
) -> DemoCorpus:
    """Write ``num_videos`` synthetic raw videos (scenes joined by hard cuts) and a ``manifest.jsonl``.

    With ``bad_files``, also a zero-byte file, a text file named .mp4, a binary non-video, a truncated
    MP4 and one with a corrupted middle; ``expected_reasons`` maps each to the reason it must get.
    """

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    corpus = DemoCorpus(folder, folder / "manifest.jsonl")
    records = []
    for index in range(num_videos):
        name = f"raw_{index:03d}.mp4"
        info = write_raw_video(folder / name, seed * 1000 + index, num_scenes, frames_per_scene, crf=crf)
        corpus.cut_frames[name] = list(info.cut_frames)
        records.append({"path": name, "caption": info.captions[0] if info.captions else ""})
    if bad_files:
        good = (folder / "raw_000.mp4").read_bytes() if num_videos else b""
        (folder / "zero_bytes.mp4").write_bytes(b"")
        (folder / "not_a_video.mp4").write_text("this is a text file, not a video\n" * 50)
        (folder / "notes.bin").write_bytes(bytes(range(256)) * 64)
        (folder / "truncated.mp4").write_bytes(good[: len(good) // 2])
        middle = len(good) // 2
        corrupted = good[:48] + bytes(255 - b for b in good[48:middle]) + good[middle:]
        (folder / "corrupt.mp4").write_bytes(corrupted)
        for name in BAD_FILES:
            records.append({"path": name, "caption": ""})
        corpus.expected_reasons.update(BAD_FILES)
    corpus.manifest.write_text("".join(json.dumps(record) + "\n" for record in records))
    return corpus
