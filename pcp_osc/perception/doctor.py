"""What `pcp-osc doctor` says about the shipped weights."""

from __future__ import annotations

import os

from . import PerceptionError
from .weights import SHIPPED_FILES, manifest, sha256_file, weights_dir


def weights_report(folder: str | os.PathLike | None = None) -> list[dict]:
    """One row per shipped weight file: file, present, sha256_ok (None when the manifest
    has no hash), size_bytes, sha256, expected_sha256, note."""
    d = weights_dir(folder)
    try:
        entries = manifest(d)
        note_all = "" if entries else f"no {d / 'manifest.json'}"
    except PerceptionError as e:
        entries, note_all = {}, str(e)
    rows = []
    names = list(SHIPPED_FILES) + [n for n in entries if n not in SHIPPED_FILES]
    for name in names:
        path = d / name
        expected = entries.get(name, {}).get("sha256")
        row = {"file": str(path), "present": path.is_file(), "size_bytes": None, "sha256": None,
               "expected_sha256": expected, "sha256_ok": None, "note": note_all}
        if row["present"]:
            row["size_bytes"] = path.stat().st_size
            row["sha256"] = sha256_file(path)
            if expected:
                row["sha256_ok"] = row["sha256"] == expected
                if not row["sha256_ok"]:
                    row["note"] = "damaged or replaced: rebuild with python tools/convert_weights.py"
        else:
            row["note"] = "missing: rebuild with python tools/convert_weights.py"
        rows.append(row)
    return rows
