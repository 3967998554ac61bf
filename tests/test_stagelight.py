"""Stage light on real photographs of people in full (pcp_osc/data/scenes): darkened to
30%, washed white, magenta, blue or red, with sensor noise and JPEG compression
(pcp_bench/stagelight.py). The detector sees such a picture stretched and smoothed
(search.detector_view), so every face is found (live video: tests/test_live_video.py); the
shipped classifier's light normalisation and noise floor keep what normal light reads;
without them it does not."""

from __future__ import annotations

import numpy as np
import pytest

from pcp_bench import stagelight
from pcp_osc.config import ClassifierConfig, PerceptionConfig
from pcp_osc.data.scenes import scenes
from pcp_osc.emotions import EMOTIONS
from pcp_osc.perception.default import DefaultBackend

JOY = EMOTIONS.index("joy")
# Faces from this height (px) up must keep their smile under every light; smaller ones
# (22..38 px in the group scenes' back rows) are reported by the bench. Every face, of
# any size, must be found.
READABLE_FACE_PX = 40
MAX_FALSE_PER_FACE = 1 / 30  # as tests/test_search_precision.py: the goal


@pytest.fixture(scope="module")
def room():
    scene_list = scenes()
    detector = DefaultBackend(PerceptionConfig(threads=2))
    searched = {light: stagelight.find_faces(detector, scene_list, light) for light in (None, *stagelight.LIGHTS)}
    heights = np.concatenate([s.faces[:, 3] - s.faces[:, 1] for s in scene_list])
    return scene_list, searched, heights, stagelight.smile_labels(scene_list)


def _classifier(**keys):
    return DefaultBackend(PerceptionConfig(threads=2, classifier=ClassifierConfig(**keys))).classifier


def test_the_scenes_are_real_and_labelled(room):
    scene_list, searched, heights, labels = room
    assert len(heights) >= 30 and {s.kind for s in scene_list} == {"photo", "group"}
    assert (labels == 1).sum() >= 8 and (labels == 0).sum() >= 8  # smiling and not, from the photos' provenance
    assert searched[None].found.all()


def test_every_face_is_found_under_every_light_and_nothing_else(room):
    # Before the detector's view was smoothed as much as the stretch amplified the sensor's
    # noise, a back-row face of 22..24 px was lost under the blue and the red wash (39 of 40).
    scene_list, searched, heights, labels = room
    for light in stagelight.LIGHTS:
        found = searched[light].found
        assert found.all(), f"{light}: faces of {heights[~found].round().tolist()} px not found"
        assert searched[light].false <= MAX_FALSE_PER_FACE * len(found), f"{light}: {searched[light].false} false boxes"


def test_stage_light_keeps_what_normal_light_reads(room):
    scene_list, searched, heights, labels = room
    clf = _classifier()  # the shipped defaults: light = stretch, noise_floor = 10, mirror
    normal = stagelight.read_emotions(clf, searched[None])
    smiling, known = labels == 1, labels >= 0
    readable = heights >= READABLE_FACE_PX
    # normal light: every labelled readable face read right (a smile is joy, no other face
    # is); below READABLE_FACE_PX a reading can flip with a 1 px shift of the box (the
    # 34 px smile in group_oval_office: joy 0.72 or neutral 0.51)
    assert ((normal == JOY) == smiling)[known & readable].all()
    for light in stagelight.LIGHTS:
        lit = stagelight.read_emotions(clf, searched[light])
        agree = (lit == normal).mean()
        assert agree >= 0.8, (light, agree)
        assert (lit[smiling & readable] == JOY).all(), light  # smiles stay joy


def test_without_normalisation_stage_light_changes_the_reading(room):
    # The same scenes, lights and faces through the plain classifier (light = off, no
    # noise floor): far fewer faces keep their reading, and normal light itself is read
    # worse on the labelled faces -- the normalisation is what the figures above measure.
    scene_list, searched, heights, labels = room
    plain, shipped = _classifier(light="off", noise_floor=0.0), _classifier()
    known, smiling = labels >= 0, labels == 1
    right = {}
    for name, clf in (("plain", plain), ("shipped", shipped)):
        normal = stagelight.read_emotions(clf, searched[None])
        right[name] = ((normal == JOY) == smiling)[known].sum()
        agree = [(stagelight.read_emotions(clf, searched[light]) == normal).mean() for light in stagelight.LIGHTS]
        right[name + " agree"] = min(agree)
    assert right["plain"] <= right["shipped"]
    assert right["plain agree"] < 0.6 <= 0.8 <= right["shipped agree"]


def test_stage_light_is_what_the_bench_says():
    image = scenes()[0].image
    lit = stagelight.stage_light(image, "magenta", seed=1)
    assert lit.shape == image.shape and lit.dtype == np.uint8
    mean_bgr = lit.reshape(-1, 3).mean(0) / np.maximum(image.reshape(-1, 3).mean(0), 1)
    assert 0.2 < mean_bgr[2] < 0.4 and mean_bgr[1] < 0.15  # 30% light, green all but gone
    assert np.array_equal(lit, stagelight.stage_light(image, "magenta", seed=1))
    with pytest.raises(ValueError, match="unknown stage light 'green'; allowed: dim, magenta, blue, red"):
        stagelight.stage_light(image, "green")
