import numpy as np
import pytest

from pcp_osc.config import MoodConfig, PaletteConfig
from pcp_osc.mood import MoodTracker, valence_arousal
from pcp_osc.palette import brightness, colour_for, emotion_colour, live_colour
from pcp_osc.types import Colour, Faces, Mood


def faces(*rows):
    rows = np.array(rows, dtype=np.float32).reshape(-1, 5)
    return Faces(np.tile([0, 0, 10, 10], (len(rows), 1)), np.ones(len(rows)), rows)


JOY = [0.9, 0.05, 0, 0, 0.05]
SAD = [0.0, 0.1, 0, 0.8, 0.1]


def test_window_gives_dominant_emotion_and_its_share():
    t = MoodTracker(MoodConfig(window_s=15), now=0.0)
    for i in range(10):
        t.update(faces(JOY, JOY, SAD), now=i)
    assert t.tick(14.9) is None
    mood = t.tick(15.0)
    assert mood.emotion_id == "joy" and mood.source == "audience"
    assert mood.confidence == pytest.approx((0.9 * 2 + 0) / 3, abs=1e-5)
    assert mood.faces == pytest.approx(3.0)
    assert mood.distribution.sum() == pytest.approx(1.0)


def test_empty_window_falls_back_to_the_intent_not_a_crash():
    t = MoodTracker(MoodConfig(window_s=5, intent="sadness", intent_confidence=0.7), now=0.0)
    for i in range(5):
        t.update(Faces.empty(), now=i)
    mood = t.tick(5.0)
    assert (mood.emotion_id, mood.source, mood.confidence, mood.faces) == ("sadness", "intent", 0.7, 0.0)
    t.set_intent(0)
    assert t.tick(10.0).emotion_id == "joy"


def test_override_wins_until_release_or_timeout():
    t = MoodTracker(MoodConfig(window_s=5), now=0.0)
    t.update(faces(JOY), 1)
    t.set_override(2, now=1.0, seconds=3.0)
    assert t.window_mood().emotion_id == "anger" and t.window_mood().source == "override"
    assert not t.expire_override(3.9)
    assert t.expire_override(4.0)
    assert t.window_mood().emotion_id == "joy"
    t.set_override(3, now=5.0)
    assert t.tick(100.0).source == "override"
    assert t.release() and not t.release()


def test_live_stream_is_smoothed_and_carries_valence_arousal():
    t = MoodTracker(MoodConfig(smoothing_s=1.0, intent="neutral"), now=0.0)
    t.update(faces(SAD), 0.0)
    m1 = t.update(faces(JOY), 0.1)
    assert m1.distribution[3] > m1.distribution[0]  # one frame of joy does not flip the room
    for i in range(2, 60):
        m = t.update(faces(JOY), i * 0.1)
    assert m.emotion_id == "joy" and m.valence > 0.5
    v, a = valence_arousal(np.array([0, 0, 1, 0, 0.0]))
    assert v < -0.5 and a > 0.8  # anger: negative, aroused


def test_window_change_range_checked():
    t = MoodTracker(MoodConfig(window_s=15), now=0.0)
    t.set_window(2.0, now=0.0)
    assert t.tick(2.0) is not None
    with pytest.raises(ValueError, match="allowed 1..300"):
        t.set_window(0.5, now=0.0)


def test_palette_defaults_follow_the_original_and_confidence_sets_brightness():
    p = PaletteConfig()
    names = {"joy": "yellow", "anxiety": "white", "anger": "orange", "sadness": "blue", "neutral": "purple"}
    hues = {k: emotion_colour(i, p).hsv for i, k in enumerate(names)}
    assert 45 / 360 <= hues["joy"][0] <= 60 / 360
    assert hues["anxiety"][1] < 0.05 and hues["anxiety"][2] == 1.0
    assert 15 / 360 <= hues["anger"][0] <= 35 / 360
    assert 200 / 360 <= hues["sadness"][0] <= 240 / 360
    assert 260 / 360 <= hues["neutral"][0] <= 300 / 360
    dim = colour_for(Mood(0, 0.2, np.eye(5)[0], 3, "audience"), 4, p)
    bright = colour_for(Mood(0, 0.9, np.eye(5)[0], 3, "audience"), 4, p)
    assert bright.hsv[2] > dim.hsv[2] and abs(bright.hsv[0] - dim.hsv[0]) < 1e-6
    assert brightness(0, p) == pytest.approx(p.min_brightness) and brightness(1, p) == 1.0


def test_blend_mixes_toward_the_intended_colour():
    p = PaletteConfig()
    joy = Mood(0, 1.0, np.eye(5)[0], 3, "audience")
    assert colour_for(joy, 3, p, blend=0).hex == p.joy
    assert colour_for(joy, 3, p, blend=1).hex == p.sadness
    half = colour_for(joy, 3, p, blend=0.5)
    assert 0 < half.b < 1 and 0 < half.r < 1
    intent = Mood(3, 1.0, np.eye(5)[3], 0, "intent")
    assert colour_for(intent, 3, p, blend=0.5).hex == p.sadness


def test_live_colour_is_the_share_weighted_mix():
    p = PaletteConfig()
    assert live_colour(np.eye(5)[3], p).hex == p.sadness
    mixed = live_colour(np.array([0.5, 0, 0, 0.5, 0]), p)
    assert mixed.r > 0.3 and mixed.b > 0.3
    assert Colour.from_hex("#ff8000").hex == "#ff8000"


def test_the_mood_counts_people_each_with_their_own_smoothed_scores():
    from pcp_osc.types import Faces

    def person_rows(*rows, ids):
        return Faces(np.zeros((len(rows), 4)), np.ones(len(rows)), np.array(rows, np.float32), track_id=ids)

    from pcp_osc.emotions import EMOTIONS

    J, S = EMOTIONS.index("joy"), EMOTIONS.index("sadness")
    joy, sad = np.eye(5, dtype=np.float32)[J], np.eye(5, dtype=np.float32)[S]
    cfg = MoodConfig(window_s=10, smoothing_s=0.0, face_smoothing_s=1.0)
    t = MoodTracker(cfg, now=0.0)
    # Two people in every frame: one smiles throughout; the other is sad, but one frame of
    # theirs reads joy (a blink, a turn of the head): smoothed per person, it barely counts.
    for i in range(30):
        other = joy if i == 15 else sad
        live = t.update(person_rows(joy, other, ids=[1, 2]), now=i / 30)
        if i == 15:
            assert live.distribution[J] < 0.6  # raw, this frame would read joy 1.0
    d = t.window_mood().distribution
    assert abs(d[J] - 0.5) < 0.05 and abs(d[S] - 0.5) < 0.05, d  # each person weighs the same
    raw = MoodTracker(MoodConfig(window_s=10, smoothing_s=0.0, face_smoothing_s=0.0), now=0.0)
    for i in range(16):
        live = raw.update(person_rows(joy, joy if i == 15 else sad, ids=[1, 2]), now=i / 30)
    assert live.distribution[J] > 0.99  # without per-person smoothing the odd frame swings the live mood


def test_a_release_right_after_an_override_carries_the_audience_not_the_intent():
    """An operator overrides, then releases before the restarted window has seen a picture (a
    short override, a mis-click corrected, a slow source): the release cue carries the audience
    as it was, not the intent (it said `intent, 0.0 faces` with a room full of faces). A whole
    window without a picture (the camera gone) still falls back to the intent."""
    cfg = MoodConfig(window_s=10, intent="sadness")
    t = MoodTracker(cfg, now=0)
    for i in range(5):
        t.update(faces([0.9, 0.02, 0.02, 0.02, 0.04], [0.8, 0.05, 0.05, 0.05, 0.05]), now=i * 0.1)
    t.set_override(2, now=1.0)
    assert t.window_mood().source == "override"
    t.restart_window(1.0)  # the override is an operator's cue
    t.release()
    m = t.window_mood()  # no frame since the override
    assert (m.source, m.emotion) == ("audience", 0) and m.faces == 2.0
    t.restart_window(1.2)  # the release restarts the window again, still before any frame
    assert t.window_mood().source == "audience"
    t.update(Faces.empty(), now=1.3)  # now the room is seen empty: that is evidence, the intent stands in
    assert t.window_mood().source == "intent"
    # a window that never saw a picture closes on the intent
    t2 = MoodTracker(cfg, now=0)
    t2.update(faces([0.9, 0.02, 0.02, 0.02, 0.04]), now=0.1)
    t2.restart_window(0.5)
    closed = t2.tick(now=11.0)
    assert closed is not None and closed.source == "intent"
