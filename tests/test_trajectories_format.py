"""Reading, validating, rescaling and writing trajectory files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from imageconductor.trajectories import (
    DEFAULT_IMAGE_SIZE,
    TrajectoryError,
    TrajectorySet,
    example_trajectories,
    list_example_trajectories,
    load_trajectories,
    parse_trajectories,
    save_trajectories,
)

RICH = {
    "version": 1,
    "image_size": [768, 256],
    "tracks": [
        {"points": [[10, 20], [700.5, 250]], "kind": "camera", "strength": 0.5},
        {"points": [[384, 128]]},
    ],
}


def test_official_list_reads_unchanged_with_defaults() -> None:
    data = [[[47.0, 62.0], [50.25, 64.25]], [[72, 233]]]
    trajectories = load_trajectories(data)
    assert trajectories.image_size == DEFAULT_IMAGE_SIZE == (384, 256)
    assert trajectories.kinds == ["object", "object"]
    assert trajectories.strengths == [1.0, 1.0]
    np.testing.assert_array_equal(trajectories.tracks[0], [[47.0, 62.0], [50.25, 64.25]])
    assert trajectories.tracks[1].shape == (1, 2) and trajectories.tracks[1].dtype == np.float64
    assert trajectories.to_official() == [[[47.0, 62.0], [50.25, 64.25]], [[72.0, 233.0]]]


def test_rich_format_fields() -> None:
    trajectories = load_trajectories(RICH)
    assert trajectories.image_size == (768, 256)
    assert trajectories.kinds == ["camera", "object"]
    assert trajectories.strengths == [0.5, 1.0]
    assert trajectories.kind == "mixed"
    assert trajectories.of_kind("camera").kind == "camera"
    np.testing.assert_array_equal(trajectories.tracks[0], [[10, 20], [700.5, 250]])


def test_rich_format_file_level_default_kind() -> None:
    data = {"kind": "camera", "tracks": [[[1, 2], [3, 4]], {"points": [[5, 6]], "kind": "object"}]}
    trajectories = load_trajectories(data)
    assert trajectories.kinds == ["camera", "object"]
    assert trajectories.image_size == DEFAULT_IMAGE_SIZE


def test_rescaling_scales_x_and_y_by_their_own_ratio() -> None:
    trajectories = load_trajectories(RICH, target_size=(384, 128))
    assert trajectories.image_size == (384, 128)
    np.testing.assert_allclose(trajectories.tracks[0], [[5, 10], [350.25, 125]])
    np.testing.assert_allclose(trajectories.tracks[1], [[192, 64]])
    assert trajectories.strengths == [0.5, 1.0]
    back = trajectories.rescaled(768, 256)
    np.testing.assert_allclose(back.tracks[0], RICH["tracks"][0]["points"])


def test_sources_path_text_bytes_and_data_agree(tmp_path: Path) -> None:
    path = tmp_path / "tracks.json"
    text = json.dumps(RICH)
    path.write_text(text)
    from_data = load_trajectories(RICH)
    assert load_trajectories(path) == from_data
    assert load_trajectories(str(path)) == from_data
    assert load_trajectories(text) == from_data
    assert load_trajectories(text.encode()) == from_data
    assert load_trajectories(from_data) == from_data


@pytest.mark.parametrize("official", [False, True])
def test_save_and_load_round_trip(tmp_path: Path, official: bool) -> None:
    trajectories = load_trajectories(RICH)
    path = save_trajectories(trajectories, tmp_path / "out.json", official=official)
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temporary file left behind
    loaded = load_trajectories(path, image_size=(768, 256))
    for ours, theirs in zip(loaded.tracks, trajectories.tracks, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    if official:
        assert json.loads(path.read_text()) == trajectories.to_official()
        assert loaded.kinds == ["object", "object"]
    else:
        assert loaded == trajectories


def test_official_points_are_checked_against_the_given_image_size() -> None:
    data = [[[500.0, 10.0]]]
    with pytest.raises(TrajectoryError, match=r"track 0, point 0: \(500, 10\) is outside the 384x256 image"):
        load_trajectories(data)
    assert load_trajectories(data, image_size=(512, 256)).image_size == (512, 256)


def test_points_on_the_far_edge_are_inside() -> None:
    trajectories = load_trajectories([[[0, 0], [384, 256]]])
    np.testing.assert_array_equal(trajectories.tracks[0][-1], [384, 256])


def test_track_limit_is_configurable() -> None:
    nine = [[[float(i), 1.0]] for i in range(9)]
    with pytest.raises(TrajectoryError, match="9 tracks given; at most 8"):
        load_trajectories(nine)
    assert len(load_trajectories(nine, max_tracks=None)) == 9
    with pytest.raises(TrajectoryError, match="at most 2"):
        parse_trajectories(nine[:3], max_tracks=2)


BAD_INPUTS = [
    ([], "no tracks"),
    ({"tracks": []}, "no tracks"),
    ([[]], "track 0 has no points"),
    ([[[1, 2]], []], "track 1 has no points"),
    ([[1, 2], [3, 4]], "single point"),
    ([[[1, 2], [3, float("nan")]]], r"track 0, point 1: y is nan"),
    ([[[1, 2]], [[float("inf"), 2]]], r"track 1, point 0: x is inf"),
    ([[[10**400, 2]]], "track 0, point 0: x is too large"),
    ([[[1, "2"]]], r"track 0, point 0: y is a string \('2'\)"),
    ([[[True, 2]]], "track 0, point 0: x is a boolean"),
    ([[[None, 2]]], "track 0, point 0: x is null"),
    ([[[[1, 2], [3, 4]]]], "track 0, point 0: x is a list of 2 items"),
    ([[[[1, 2]]]], "track 0, point 0 has 1 value; expected exactly two"),
    ([[[1, 2, 3]]], "track 0, point 0 has 3 values"),
    ([[1.5]], r"track 0, point 0 is a float; expected a point \[x, y\] \(is the track nested"),
    ([[[1, 2]], "abc"], r"track 1 is a string"),
    ([[[1, 2]], [[5, 6], [7, -1]]], r"track 1, point 1: \(7, -1\) is outside"),
    ("not json at all {", "trajectory file not found"),
    ("[[[1, 2], [3, 4]]", "invalid JSON in JSON text: .* line 1 column"),
    ("[" * 100_000, "invalid JSON"),
    (b"\xff\xfe", "not UTF-8"),
    (42, "trajectories are an int"),
    (None, "trajectories are null"),
    ({"tracks": [[[1, 2]]], "colour": "red"}, "unknown key.*'colour'"),
    ({"version": 2, "tracks": [[[1, 2]]]}, "unsupported version 2"),
    ({"version": "1", "tracks": [[[1, 2]]]}, "version is a string"),
    ({"image_size": [0, 256], "tracks": [[[0, 0]]]}, "width is 0.0; expected a positive whole number"),
    ({"image_size": [384.5, 256], "tracks": [[[0, 0]]]}, "width is 384.5"),
    ({"image_size": 384, "tracks": [[[0, 0]]]}, "image_size is an int; expected \\[width, height\\]"),
    ({"tracks": {"points": []}}, "tracks is an object; expected a list"),
    ({"image_size": [384, 256]}, 'no "tracks"'),
    ({"tracks": [{"kind": "object"}]}, 'track 0 has no "points"'),
    ({"tracks": [{"points": [[1, 2]], "kind": "objekt"}]}, "track 0: kind is 'objekt'; expected one of"),
    ({"tracks": [{"points": [[1, 2]], "strength": -1}]}, "track 0: strength is -1.0"),
    ({"tracks": [{"points": [[1, 2]], "strength": "x"}]}, "track 0: strength is a string"),
    ({"tracks": [{"points": [[1, 2]], "name": 3}]}, "track 0: name is an int"),
]


@pytest.mark.parametrize(("data", "message"), BAD_INPUTS)
def test_bad_input_gives_a_specific_error(data: object, message: str) -> None:
    with pytest.raises(TrajectoryError, match=message):
        load_trajectories(data)


def test_nan_in_json_text_is_rejected() -> None:
    with pytest.raises(TrajectoryError, match=r"track 0, point 1: x is nan"):
        load_trajectories("[[[1, 2], [NaN, 3]]]")


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(TrajectoryError, match="not found"):
        load_trajectories(tmp_path / "missing.json")
    with pytest.raises(TrajectoryError, match="cannot read"):
        load_trajectories(tmp_path)


def test_trajectory_error_is_a_value_error() -> None:
    assert issubclass(TrajectoryError, ValueError)


def test_numpy_input() -> None:
    tracks = np.array([[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]]])
    trajectories = load_trajectories(tracks)
    assert len(trajectories) == 2
    np.testing.assert_array_equal(trajectories.tracks[1], tracks[1])
    with pytest.raises(TrajectoryError, match="dtype bool"):
        load_trajectories([np.zeros((2, 2), dtype=bool)])


def test_direct_construction_is_validated() -> None:
    with pytest.raises(TrajectoryError, match="2 tracks but 1 kinds"):
        TrajectorySet([np.zeros((1, 2)), np.ones((1, 2))], kinds=["object"])
    with pytest.raises(TrajectoryError, match="track 0, point 0"):
        TrajectorySet([np.array([[-5.0, 0.0]])])
    trajectories = TrajectorySet([[[1, 2]]], kinds="camera", strengths=2.0, image_size=(10, 10))
    assert trajectories.kinds == ["camera"] and trajectories.strengths == [2.0]


def test_bundled_examples_load_at_the_model_size() -> None:
    names = list_example_trajectories()
    assert any(n.startswith("camera_") for n in names) and any(n.startswith("object_") for n in names)
    for name in names:
        trajectories = example_trajectories(name)
        assert trajectories.image_size == (384, 256)
        assert trajectories.kind == name.split("_")[0]
    with pytest.raises(TrajectoryError, match="no example trajectory"):
        example_trajectories("nope")


def test_json_examples_in_the_docs_load() -> None:
    import re

    docs = Path(__file__).resolve().parents[1] / "docs" / "trajectories.md"
    blocks = re.findall(r"```json\n(.*?)```", docs.read_text(), flags=re.DOTALL)
    assert len(blocks) >= 2
    loaded = [load_trajectories(block) for block in blocks]
    assert loaded[0].kinds == ["object"] * 3
    assert loaded[1].kinds == ["object", "camera", "camera"] and loaded[1].strengths == [1.0, 1.0, 0.5]
