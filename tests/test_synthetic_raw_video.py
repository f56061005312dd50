"""Raw videos: scenes joined by hard cuts at recorded frames, found by PySceneDetect."""

from __future__ import annotations

import json

import numpy as np
import pytest

from imageconductor.synthetic import raw_video_specs, render_raw_video, write_raw_video
from imageconductor.video_io import probe, read_video

SIZE = {"width": 192, "height": 128}


@pytest.fixture(scope="module")
def raw_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("raw") / "raw.mp4"
    info = write_raw_video(path, seed=3, num_scenes=3, frames_per_scene=(20, 30), fps=24, **SIZE)
    return path, info


def test_cut_frames_and_scene_ranges_are_consistent(raw_video):
    path, info = raw_video
    lengths = [end - start for start, end in info.scenes]
    assert all(20 <= n <= 30 for n in lengths)
    assert info.scenes[0][0] == 0 and info.scenes[-1][1] == info.num_frames == sum(lengths)
    assert info.cut_frames == [start for start, _ in info.scenes[1:]]
    assert info.cut_frames == list(np.cumsum(lengths)[:-1])
    assert [spec.num_frames for spec in info.specs] == lengths
    json.dumps(info.to_dict())  # serialisable as metadata


def test_written_video_matches_rendered_frames(raw_video):
    path, info = raw_video
    meta = probe(path)
    assert (meta.num_frames, meta.width, meta.height) == (info.num_frames, 192, 128)
    assert meta.fps == pytest.approx(24)
    decoded, _ = read_video(path)
    rendered, same_info = render_raw_video(seed=3, num_scenes=3, frames_per_scene=(20, 30), **SIZE)
    assert same_info.cut_frames == info.cut_frames
    assert np.abs(decoded.astype(float) - rendered).mean() < 4.0


def test_cuts_change_the_picture_far_more_than_motion_does():
    frames, info = render_raw_video(seed=5, num_scenes=4, frames_per_scene=(8, 12), **SIZE)
    steps = np.abs(np.diff(frames.astype(np.float32), axis=0)).mean(axis=(1, 2, 3))
    at_cuts = steps[np.array(info.cut_frames) - 1]
    within = np.delete(steps, np.array(info.cut_frames) - 1)
    assert at_cuts.min() > 3 * within.max()


def test_scenes_use_different_palettes_and_seeds():
    specs = raw_video_specs(seed=1, num_scenes=5, frames_per_scene=(10, 10))
    assert len({spec.seed for spec in specs}) == 5
    hues = [spec.style.base_hue for spec in specs]
    gaps = [abs((a - b + 180) % 360 - 180) for a, b in zip(hues, hues[1:], strict=False)]
    assert min(gaps) >= 80 - 1e-9
    assert raw_video_specs(seed=1, num_scenes=5, frames_per_scene=(10, 10)) == specs


def test_pyscenedetect_finds_exactly_the_cuts(raw_video):
    from scenedetect import ContentDetector, detect

    path, info = raw_video
    scenes = detect(str(path), ContentDetector(threshold=27, min_scene_len=15), start_in_scene=True)
    found = [start.frame_num for start, _ in scenes[1:]]
    assert found == info.cut_frames


def test_bad_arguments_raise(tmp_path):
    with pytest.raises(ValueError, match="num_scenes"):
        write_raw_video(tmp_path / "x.mp4", seed=0, num_scenes=0)
    with pytest.raises(ValueError, match="frames_per_scene"):
        write_raw_video(tmp_path / "x.mp4", seed=0, frames_per_scene=(30, 10))
    assert not (tmp_path / "x.mp4").exists()
