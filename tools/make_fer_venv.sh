#!/usr/bin/env bash
# A separate venv with the `fer` library, for `pcp-osc bench`'s side-by-side comparison.
#
# Why not an extra of pcp-osc: fer 25.10.3 declares opencv-contrib-python (which
# overwrites the cv2 of opencv-python-headless), tensorflow, facenet-pytorch (which pins
# an old torch), moviepy, pandas and more. Under OpenCV 5 its Haar cascade path fails
# (cv2.CascadeClassifier and cv2.data's cascades are gone), so it needs OpenCV 4.x.
# Here: fer without its declared dependencies, plus only what fer.fer imports.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.cache/fer-venv}
PY=${PYTHON:-python3}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install --quiet "tensorflow-cpu>=2.16" "opencv-contrib-python-headless<5" pillow requests "setuptools<81"
"$VENV/bin/pip" install --quiet --no-deps "fer==25.10.3"
"$VENV/bin/python" -c "import fer.fer, cv2, os; assert os.path.exists(cv2.data.haarcascades + 'haarcascade_frontalface_default.xml'); print('fer ready:', fer.__version__, 'opencv', cv2.__version__)"
