"""One YOLO workspace per test session: an AI Hub-layout set is built, converted, a detector and a
face classifier are trained on the CPU and exported to ONNX -- every command run as a subprocess with
the network blocked (tests/netblock/sitecustomize.py records any attempt). Training happens once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from aihub_fixture import Planned, build_aihub

REPO = Path(__file__).resolve().parent.parent
NETBLOCK = Path(__file__).resolve().parent / "netblock"
# A tiny schedule that still learns from scratch in about a minute on 2 cores: no mosaic
# (tiles of 64 px images leave faces too small), no warm-up, no per-epoch validation.
DETECT_TRAIN = ["--epochs", "30", "--imgsz", "64", "--batch", "8", "--workers", "0",
                "--hyp", "mosaic=0", "--hyp", "warmup_epochs=0", "--hyp", "val=False"]
CLASSIFY_TRAIN = ["--epochs", "8", "--imgsz", "64", "--batch", "16", "--workers", "0", "--hyp", "warmup_epochs=0",
                  "--hyp", "val=False"]


@dataclass
class YoloWorkspace:
    root: Path
    src: Path
    plan: Planned
    det: Path  # converted detection set (data.yaml inside)
    cls: Path  # converted classify set
    report: dict  # `pcp-osc dataset aihub --json` of the detection conversion
    pt: Path
    onnx: Path
    export: dict  # `pcp-osc export --json`
    cls_pt: Path
    cls_onnx: Path
    netlog: Path
    fake_home: Path
    settings_dir: Path


def offline_env(root: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(NETBLOCK), str(REPO)])
    env["PCP_NETBLOCK_LOG"] = str(root / "network-attempts.log")
    env["PCP_OSC_YOLO_DIR"] = str(root / "ultralytics-settings")
    env["HOME"] = str(root / "home")
    env["MPLCONFIGDIR"] = str(root / "mpl")
    env.pop("YOLO_OFFLINE", None)  # pcp-osc must set it itself
    env.pop("YOLO_CONFIG_DIR", None)
    return env


def pcp(root: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `pcp-osc ARGS` offline; fail the test with its output if it exits non-zero."""
    proc = subprocess.run([sys.executable, "-m", "pcp_osc", *args], cwd=root, env=offline_env(root),
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f"pcp-osc {' '.join(args)} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


@pytest.fixture(scope="session")
def yolo_ws(tmp_path_factory) -> YoloWorkspace:
    root = tmp_path_factory.mktemp("yolo")
    (root / "home").mkdir()
    src = root / "aihub"
    plan = build_aihub(src, persons=16, photos_per_person=8)
    det, cls = root / "det", root / "cls"
    report = json.loads(pcp(root, "dataset", "aihub", str(src), str(det), "--split", "0.6,0.2,0.2", "--json", "-q").stdout)
    pcp(root, "dataset", "aihub", str(src), str(cls), "--layout", "classify", "--crop-px", "64", "--split", "0.6,0.2,0.2", "-q")
    pcp(root, "train", "--data", str(det / "data.yaml"), "--out", str(root / "run-det"), *DETECT_TRAIN)
    pt = root / "run-det" / "train" / "weights" / "best.pt"
    export = _last_json(pcp(root, "export", str(pt), "--out", str(root / "emotions.onnx"), "--json",
                            "--check", str(det / "images" / "test"), "--conf", "0.25").stdout)
    pcp(root, "train", "--data", str(cls), "--out", str(root / "run-cls"), *CLASSIFY_TRAIN)
    cls_pt = root / "run-cls" / "train" / "weights" / "best.pt"
    pcp(root, "export", str(cls_pt), "--out", str(root / "faces-cls.onnx"), "--json")
    return YoloWorkspace(root=root, src=src, plan=plan, det=det, cls=cls, report=report, pt=pt,
                         onnx=root / "emotions.onnx", export=export, cls_pt=cls_pt, cls_onnx=root / "faces-cls.onnx",
                         netlog=root / "network-attempts.log", fake_home=root / "home",
                         settings_dir=root / "ultralytics-settings")


def _last_json(stdout: str) -> dict:
    """The JSON object a command printed last (ultralytics prints its own lines before it)."""
    start = stdout.rfind("\n{")
    return json.loads(stdout[start + 1 if start >= 0 else stdout.find("{"):])
