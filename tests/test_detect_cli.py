"""`pcp-osc detect` as a user runs it: a real subprocess, real photographs and a real
video file written with OpenCV."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import pytest

from pcp_bench.perception import match_counts
from pcp_osc.data import crowd_frame, photo_path
from pcp_osc.emotions import EMOTIONS


def pcp(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pcp_osc", *args], capture_output=True, text=True, timeout=300)


def test_json_lines_for_images_in_the_order_given_and_a_corrupt_file_is_skipped(tmp_path):
    bad = tmp_path / "damaged.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    a, b = str(photo_path("astronaut_collins.jpg")), str(photo_path("hopper.jpg"))
    r = pcp("detect", "--json", a, str(bad), b)
    assert r.returncode == 1  # something failed, the rest was still done
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [d["image"] for d in lines] == [a, b]
    assert all(d["frame"] == 0 for d in lines)
    assert "damaged.jpg" in r.stderr and "not a readable image" in r.stderr
    face = lines[0]["faces"][0]
    assert set(face) == {"box", "emotion", "confidence", "scores"}
    assert len(face["box"]) == 4 and face["box"][0] < face["box"][2] and face["box"][1] < face["box"][3]
    assert face["emotion"] == "joy" and list(face["scores"]) == list(EMOTIONS)
    assert face["confidence"] == max(face["scores"].values())
    assert abs(sum(face["scores"].values()) - 1) < 1e-3
    assert len(lines[1]["faces"]) == 1 and lines[1]["faces"][0]["emotion"] != "joy"


def test_an_image_of_float_samples_is_named_as_such_not_as_damaged(tmp_path):
    # a 32-bit float TIFF (an HDR or compositing export) is a sound file OpenCV does not read
    # as 8-bit colour: the message says what it is and what to save instead
    tiff = tmp_path / "hall.tiff"
    assert cv2.imwrite(str(tiff), cv2.imread(str(photo_path("hopper.jpg"))).astype("float32") / 255)
    r = pcp("detect", "--json", str(tiff))
    assert r.returncode == 1 and r.stdout == ""
    assert "of float32 samples" in r.stderr and "8 or 16 bits per channel" in r.stderr, r.stderr
    assert "damaged" not in r.stderr and "WARN" not in r.stderr  # not OpenCV's own line


def test_missing_file_is_reported_and_exit_status_is_nonzero(tmp_path):
    r = pcp("detect", "--json", str(tmp_path / "nope.png"))
    assert r.returncode == 1 and r.stdout == ""
    assert "nope.png: no such file" in r.stderr


def test_json_lines_for_a_short_video_every_second_frame(tmp_path):
    video = tmp_path / "crowd.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 360))
    assert writer.isOpened()
    frame, boxes = crowd_frame(4, size=(640, 360), face_px_range=(50, 90), seed=11)
    for _ in range(6):
        writer.write(frame)
    writer.release()
    image = str(photo_path("trump_portrait.jpg"))
    r = pcp("detect", "--json", "--every", "2", str(video), image)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(d["image"], d["frame"]) for d in lines] == [(str(video), 0), (str(video), 2), (str(video), 4), (image, 0)]
    import numpy as np

    for d in lines[:3]:
        found = np.array([f["box"] for f in d["faces"]], np.float32).reshape(-1, 4)
        assert match_counts(boxes, found) == (4, 0)
    assert lines[3]["faces"][0]["emotion"] == "joy"


def test_table_without_json(tmp_path):
    r = pcp("detect", str(photo_path("obama_portrait.jpg")))
    assert r.returncode == 0, r.stderr
    assert "obama_portrait.jpg" in r.stdout and "joy" in r.stdout
    header = r.stdout.splitlines()[0].split()
    assert header[:3] == ["file", "frame", "faces"] and header.count("faces") == 1, header  # not "faces faces"


@pytest.mark.parametrize("flag, words", [(["--every", "0"], "--every 0"), (["--threshold", "2"], "--threshold 2")])
def test_bad_flags_are_refused_clearly(flag, words):
    r = pcp("detect", *flag, str(photo_path("hopper.jpg")))
    assert r.returncode == 2 and words in r.stderr
