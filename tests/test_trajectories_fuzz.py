"""Fuzzing the trajectory parser: any JSON-like input parses to a valid set or raises TrajectoryError."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imageconductor.trajectories import MAX_TRACKS, TrajectoryError, TrajectorySet, load_trajectories

KEYS = ["version", "image_size", "tracks", "kind", "strength", "points", "name", "description", "x"]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=6)
    | st.sampled_from(["object", "camera", "objekt", ""])
)
json_like = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.sampled_from(KEYS), children, max_size=5)
    ),
    max_leaves=40,
)
valid_point = st.tuples(st.floats(0, 384), st.floats(0, 256)).map(list)
valid_official = st.lists(st.lists(valid_point, min_size=1, max_size=5), min_size=1, max_size=9)
valid_rich = st.fixed_dictionaries(
    {"tracks": valid_official.map(lambda tracks: [{"points": t} for t in tracks])},
    optional={
        "version": st.just(1),
        "image_size": st.just([384, 256]),
        "kind": st.sampled_from(["object", "camera"]),
    },
)


@st.composite
def mutated(draw: st.DrawFn) -> object:
    """A valid structure with one value somewhere inside replaced by something arbitrary.

    The drawn value is copied before it is changed: `st.just` hands out the same list every time, and
    changing it in place would change what later examples draw (hypothesis reports that as flaky).
    """
    value = copy.deepcopy(draw(valid_official | valid_rich))
    container, key = None, None
    node = value
    for _ in range(draw(st.integers(0, 5))):
        if isinstance(node, dict) and node:
            keys = sorted(node)
        elif isinstance(node, list) and node:
            keys = list(range(len(node)))
        else:
            break
        container, key = node, draw(st.sampled_from(keys))
        node = container[key]
    replacement = draw(json_like)
    if container is None:
        return replacement
    container[key] = replacement
    return value


FUZZ = settings(max_examples=70, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check_outcome(value: object) -> None:
    try:
        result = load_trajectories(value)
    except TrajectoryError as error:
        assert str(error), "errors must say what is wrong"
        return
    assert isinstance(result, TrajectorySet)
    assert 1 <= len(result) <= MAX_TRACKS
    width, height = result.image_size
    for points, kind, strength in zip(result.tracks, result.kinds, result.strengths, strict=True):
        assert points.ndim == 2 and points.shape[1] == 2 and len(points) >= 1
        assert np.isfinite(points).all()
        assert points[:, 0].min() >= 0 and points[:, 0].max() <= width
        assert points[:, 1].min() >= 0 and points[:, 1].max() <= height
        assert kind in ("object", "camera") and math.isfinite(strength) and strength >= 0


@FUZZ
@given(json_like)
def test_any_json_like_value(value: object) -> None:
    _check_outcome(value)


@FUZZ
@given(valid_official | valid_rich | mutated())
def test_nearly_valid_structures(value: object) -> None:
    _check_outcome(value)
    try:
        text = json.dumps(value)
    except (ValueError, OverflowError):
        return
    _check_outcome(text)  # the same through the JSON-text path


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet='[]{}",.:0123456789-eEnulNaIfy tr\x00\\', max_size=40))
def test_arbitrary_json_text(text: str) -> None:
    _check_outcome("[" + text)
    _check_outcome(text)
