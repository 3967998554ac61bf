"""Where the shipped weight files are, and whether they are the files weights/manifest.json
names (sha256). Missing or damaged files give a :class:`PerceptionError` that says
which file, what was expected and how to rebuild it."""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path

from . import PerceptionError

DETECTOR_FILE = "retinaface_mnet025.onnx"
CLASSIFIER_FILE = "fer_mini_xception.onnx"
SHIPPED_FILES = (DETECTOR_FILE, CLASSIFIER_FILE)
ENV_WEIGHTS_DIR = "PCP_OSC_WEIGHTS"
FIX = "rebuild it with: python tools/convert_weights.py (see weights/PROVENANCE.md)"


def weights_dir(override: str | os.PathLike | None = None) -> Path:
    """The folder holding the shipped weights: the argument, else $PCP_OSC_WEIGHTS, else
    the repository's weights/ beside the package."""
    if override:
        return Path(override)
    if os.environ.get(ENV_WEIGHTS_DIR):
        return Path(os.environ[ENV_WEIGHTS_DIR])
    return Path(__file__).resolve().parents[2] / "weights"


def manifest(folder: Path) -> dict[str, dict]:
    """file name -> manifest entry; empty when there is no manifest.json."""
    return _manifest_cached(str(folder))


@lru_cache(maxsize=8)
def _manifest_cached(folder: str) -> dict[str, dict]:
    path = Path(folder) / "manifest.json"
    try:
        entries = json.loads(path.read_text())["files"]
    except FileNotFoundError:
        return {}
    except (ValueError, KeyError, TypeError) as e:
        raise PerceptionError(f"{path} is not a valid weights manifest ({e}); {FIX}") from e
    return {e["file"]: e for e in entries}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def weight_path(name: str, folder: str | os.PathLike | None = None) -> Path:
    """The path of a shipped weight file, checked against the manifest's sha256."""
    d = weights_dir(folder)
    path = d / name
    expected = manifest(d).get(name, {}).get("sha256")
    want = f"sha256 {expected}" if expected else "the file named in weights/manifest.json"
    if not path.is_file():
        raise PerceptionError(f"weight file {path} is missing (expected {want}); {FIX}")
    if expected:
        got = sha256_file(path)
        if got != expected:
            raise PerceptionError(
                f"weight file {path} is damaged or not the shipped one: sha256 {got}, "
                f"expected {expected} ({path.stat().st_size} bytes); {FIX}"
            )
    return path
