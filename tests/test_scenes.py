"""The real scenes (pcp_osc/data/scenes): photographs of people in full with their faces
marked, and the scoring every precision figure relies on."""

import numpy as np
import pytest

from pcp_osc.data.scenes import scene, scene_names, scene_path, scenes


def test_scenes_hold_people_in_full_and_groups_at_1920_and_4k():
    names = scene_names()
    # ultralytics (a dev dependency) ships bus.jpg and zidane.jpg; the others are stored here
    assert {"bus", "zidane", "biden", "group_blue_room", "group_oval_office", "group_flags"} <= set(names)
    groups = scenes("group")
    assert len(groups) >= 3 and all(s.size == (1920, 1080) for s in groups)
    assert sum(len(s.faces) for s in scenes()) >= 30
    four_k = groups[0].scaled(2.0)
    assert four_k.size == (3840, 2160)
    np.testing.assert_allclose(four_k.faces, groups[0].faces * 2, atol=1)
    for s in scenes():
        h, w = s.image.shape[:2]
        assert len(s.faces) >= 1
        assert np.all(s.faces[:, :2] >= 0) and np.all(s.faces[:, 2] <= w) and np.all(s.faces[:, 3] <= h)
        assert np.all(s.faces[:, 2:] - s.faces[:, :2] >= 10)
        assert scene_path(s.name).is_file()


def test_score_counts_hits_misses_false_and_ignored_boxes():
    s = scene("obama_congress")  # one face, and a half-cut face at the right edge marked 'ignore'
    face = s.faces[0]
    assert s.score(s.faces).found == 1 and s.score(s.faces).false == 0
    t = s.score(np.array([face, face + [0, 400, 0, 400]]))  # the face, and a box on the chest
    assert (t.found, t.missed, t.false) == (1, 0, 1)
    t = s.score(np.array([face, face]))  # a second box on one face is a false box
    assert (t.found, t.false) == (1, 1)
    t = s.score(np.array([s.ignore[0]]))  # the cut-off face: neither hit nor false
    assert (t.found, t.missed, t.false) == (0, 1, 0)


def test_unknown_scene_names_the_ones_there_are():
    with pytest.raises(ValueError, match="group_blue_room"):
        scene("nope")
    with pytest.raises(ValueError, match="photo, group"):
        scene_names("video")
