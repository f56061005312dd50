"""Trajectory overlays and side-by-side videos."""

from __future__ import annotations

import numpy as np
import pytest

from imageconductor.overlay import draw_paths, draw_trajectories, side_by_side, track_colors


def _black(num_frames=6, height=48, width=64):
    return np.zeros((num_frames, height, width, 3), dtype=np.uint8)


def _has_colour(pixel, color) -> bool:
    """Anti-aliased pixels are the colour scaled down: compare the direction, require some intensity."""
    pixel = np.asarray(pixel, dtype=float)
    color = np.asarray(color, dtype=float)
    return (
        pixel.max() > 60 and np.abs(pixel / np.linalg.norm(pixel) - color / np.linalg.norm(color)).max() < 0.1
    )


def test_colors_are_distinct():
    colors = track_colors(8)
    assert len(set(colors)) == 8
    for i, first in enumerate(colors):
        for second in colors[i + 1 :]:
            assert np.abs(np.subtract(first, second)).sum() > 60


def test_tracks_are_drawn_progressively_in_their_own_colours():
    frames = _black()
    # Track 0 moves right along y=10, track 1 moves down along x=50.
    track0 = np.stack([np.linspace(5, 40, 6), np.full(6, 10.0)], axis=1)
    track1 = np.stack([np.full(6, 50.0), np.linspace(5, 40, 6)], axis=1)
    drawn = draw_trajectories(frames, [track0, track1], thickness=1)
    assert not drawn[0, :, :].any(axis=-1)[30:, :30].any()  # nothing far from both tracks
    color0, color1 = track_colors(2)
    for t in range(6):
        x0, y0 = track0[t].round().astype(int)
        x1, y1 = track1[t].round().astype(int)
        assert tuple(drawn[t, y0, x0]) == color0  # the dot sits on the current point
        assert tuple(drawn[t, y1, x1]) == color1
    # Progressive: on frame 1 the end of track 0 is not drawn yet; on the last frame the whole path is.
    end_x, end_y = track0[-1].astype(int)
    assert not drawn[1, end_y, end_x].any()
    mid_x = int(track0[2, 0] + track0[3, 0]) // 2
    assert _has_colour(drawn[-1, 10, mid_x], color0)
    assert not drawn[1, 10, mid_x].any()
    # The input is left untouched.
    assert not frames.any()


def test_side_by_side_places_videos_left_to_right_with_a_gap():
    left = np.full((3, 8, 10, 3), 10, np.uint8)
    right = np.full((3, 8, 10, 3), 200, np.uint8)
    panel = side_by_side(left, right, gap=4)
    assert panel.shape == (3, 8, 24, 3)
    assert (panel[:, :, :10] == 10).all()
    assert (panel[:, :, 10:14] == 255).all()
    assert (panel[:, :, 14:] == 200).all()


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="equal shapes"):
        side_by_side(_black(), _black(width=32))
    with pytest.raises(ValueError, match="uint8"):
        draw_trajectories(np.zeros((2, 4, 4, 3), np.float32), [])
    with pytest.raises(ValueError, match="track 0"):
        draw_trajectories(_black(), [np.zeros((3, 3))])


def test_draw_paths_draws_whole_tracks_in_the_given_colours():
    image = _black(1)[0]
    path = np.array([[5.0, 10.0], [25.0, 10.0], [45.0, 10.0]])
    static = np.array([[50.0, 40.0]])
    colors = [(255, 0, 0), (0, 0, 255)]
    drawn = draw_paths(image, [path, static], thickness=1, colors=colors)
    assert tuple(drawn[10, 45]) == colors[0]  # the dot at the end of the path
    assert _has_colour(drawn[10, 15], colors[0])  # the first segment is drawn too
    assert tuple(drawn[40, 50]) == colors[1]  # a one-point track is a dot
    assert not drawn[30:36, 5:40].any()  # nothing away from the tracks
    assert not image.any()
    # draw_paths is the last frame of draw_trajectories with as many frames as the longest track.
    frames = np.repeat(image[None], 3, axis=0)
    assert np.array_equal(draw_trajectories(frames, [path, static], 1, colors)[-1], drawn)
    with pytest.raises(ValueError, match="one colour per track"):
        draw_paths(image, [path, static], colors=colors[:1])
