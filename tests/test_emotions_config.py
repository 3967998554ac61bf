import subprocess
import sys

import numpy as np
import pytest

from pcp_osc.config import Config, ConfigError, config_from_dict, defaults_toml, load_config
from pcp_osc.emotions import EMOTIONS, UnknownEmotion, merge_matrix, merge_scores, parse_emotion


@pytest.mark.parametrize(
    "name,index",
    [("joy", 0), ("JOY", 0), ("happy", 0), ("기쁨", 0), (0, 0), ("0", 0),
     ("fear", 1), ("surprise", 1), ("당황", 1), ("불안", 1), ("anxiety", 1),
     ("angry", 2), ("disgust", 2), ("contempt", 2), ("분노", 2),
     ("sad", 3), ("상처", 3), ("슬픔", 3), (3, 3),
     ("neutral", 4), ("중립", 4), (4.0, 4)],
)
def test_every_name_of_an_emotion_is_understood(name, index):
    assert parse_emotion(name) == index


@pytest.mark.parametrize("bad", ["happyy", 5, -1, "", None, True, 2.5, "알수없음"])
def test_unknown_emotion_names_value_and_allowed(bad):
    with pytest.raises(UnknownEmotion) as e:
        parse_emotion(bad, "OSC /pcp/intent")
    msg = str(e.value)
    assert repr(bad) in msg and "joy, anxiety, anger, sadness, neutral" in msg and "OSC /pcp/intent" in msg


def test_fer_scores_sum_into_the_five():
    fer = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    s = np.array([[0.1, 0.05, 0.05, 0.5, 0.1, 0.1, 0.1]])
    five = merge_scores(s, fer)
    assert five.shape == (1, 5)
    np.testing.assert_allclose(five[0], [0.5, 0.15, 0.15, 0.1, 0.1], atol=1e-6)
    with pytest.raises(UnknownEmotion, match="class 1"):
        merge_matrix(["happy", "bored"])


def test_defaults_cover_every_key_and_round_trip(tmp_path):
    text = defaults_toml()
    path = tmp_path / "defaults.toml"
    path.write_text(text)
    assert load_config(path) == Config()
    for section in ("capture", "perception", "mood", "palette", "osc", "generator", "sinks", "log", "web", "privacy"):
        assert f"[{section}]" in text


@pytest.mark.parametrize(
    "data,expected",
    [
        ({"mood": {"windw_s": 3}}, "unknown key 'mood.windw_s'; allowed keys in [mood]: window_s"),
        ({"moood": {}}, "unknown key 'moood'"),
        ({"mood": {"window_s": 0.5}}, "mood.window_s = 0.5 is out of range; allowed 1.0..300.0"),
        ({"mood": {"window_s": "fast"}}, "mood.window_s = 'fast' must be a number"),
        ({"mood": {"intent": "elation"}}, "mood.intent = 'elation': unknown emotion"),
        ({"osc": {"target": "localhost"}}, "osc.target = 'localhost'"),
        ({"osc": {"control_port": 70000}}, "allowed 0..65535"),
        ({"palette": {"joy": "yellow"}}, "palette.joy = 'yellow' is not a colour"),
        ({"perception": {"backend": "magic"}}, "choose one of: default, yolo"),
        ({"osc": {"allowed_senders": "10.0.0.1"}}, "must be a list"),
        ({"capture": {"loop": "yes"}}, "capture.loop = 'yes' must be true or false"),
    ],
)
def test_a_wrong_key_or_value_names_key_value_and_what_is_allowed(data, expected):
    with pytest.raises(ConfigError) as e:
        config_from_dict(data)
    assert expected in str(e.value)


def test_bad_config_stops_start_up_with_the_message(tmp_path):
    bad = tmp_path / "show.toml"
    bad.write_text('[mood]\nwindow_s = 900\n')
    r = subprocess.run([sys.executable, "-m", "pcp_osc", "run", "--config", str(bad), "--seconds", "1"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "mood.window_s = 900.0 is out of range; allowed 1.0..300.0" in r.stderr
    notoml = tmp_path / "broken.toml"
    notoml.write_text("[mood\nwindow_s = 3")
    r = subprocess.run([sys.executable, "-m", "pcp_osc", "config", "--check", str(notoml)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "is not valid TOML" in r.stderr


def test_command_line_flags_are_validated_like_the_file():
    from argparse import Namespace

    from pcp_osc.commands.run import config_with_overrides

    cfg = config_with_overrides(Namespace(config=None, window=20.0, target="10.0.0.7:7000", intent="기쁨", source="demo"))
    assert cfg.mood.window_s == 20.0 and cfg.osc.target == "10.0.0.7:7000" and cfg.capture.source == "demo"
    with pytest.raises(ConfigError, match="out of range"):
        config_with_overrides(Namespace(config=None, window=301.0))


def test_a_target_on_the_daemons_own_control_port_is_refused_at_start(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pcp_osc", "run", "--target", "127.0.0.1:9010", "--seconds", "1", "--no-log"],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 2
    assert "osc.target = '127.0.0.1:9010' is this daemon's own show-control port" in r.stderr
    assert "--control-port" in r.stderr
    with pytest.raises(ConfigError, match="extra_targets = 'localhost:7100' is this daemon's own show-control port"):
        config_from_dict({"osc": {"control_port": 7100, "extra_targets": ["localhost:7100"]}})
    # the same port on another machine is fine, and so is port 0 (a free one is picked)
    config_from_dict({"osc": {"target": "10.0.0.9:9010"}})
    config_from_dict({"osc": {"control_port": 0}})


@pytest.mark.parametrize("path", ["examples/show.toml", "touchdesigner/pcp-osc-touchdesigner.toml"])
def test_shipped_configs_pass_the_start_up_checks(path):
    repo = __import__("pathlib").Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "-m", "pcp_osc", "config", "--check", str(repo / path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip().endswith(": ok"), r.stderr


def test_config_check_runs_the_route_templates_too(tmp_path):
    bad = tmp_path / "desk.toml"
    bad.write_text('[[routes]]\npreset = "eos"\ntarget = "127.0.0.1:8000"\naddresses = ["/eos/chan/1 {chanel}"]\n')
    r = subprocess.run([sys.executable, "-m", "pcp_osc", "config", "--check", str(bad)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "unknown placeholder {chanel}" in r.stderr and "channel" in r.stderr
