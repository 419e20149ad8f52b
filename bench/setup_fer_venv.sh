#!/usr/bin/env bash
# Creates bench/.venv-fer: the `fer` PyPI package (our nearest peer) in a venv of its own, for
# bench/peer_fer.py. Its own venv because:
#   - fer imports pkg_resources, which setuptools 81+ no longer ships -> setuptools<81;
#   - it pulls opencv-contrib-python 5 and facenet-pytorch (torch 2.2, numpy<2), which clash
#     with fer-video's opencv-python-headless 4, numpy 2 and TensorFlow 2.21;
#   - its MTCNN mode (facenet-pytorch) segfaulted with `triton` installed beside it, and torch
#     2.2 pulls triton in, so it is removed again (CPU-only use needs none of it).
# TensorFlow: whatever pip resolves beside numpy<2 (fer only asks for tensorflow>=2.0).
# Usage: bash bench/setup_fer_venv.sh    (PYTHON=python3.11 FER_VERSION=25.10.3 to change)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv-fer"
python="${PYTHON:-python3}"
fer_version="${FER_VERSION:-25.10.3}"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/pip" install --disable-pip-version-check "fer==$fer_version" "setuptools<81"
"$venv/bin/pip" uninstall --disable-pip-version-check -y triton >/dev/null 2>&1 || true
if "$venv/bin/pip" show triton >/dev/null 2>&1; then
    echo "setup_fer_venv: triton is still installed in $venv; fer's MTCNN mode may segfault" >&2
    exit 1
fi
"$venv/bin/python" - <<'PY'
import cv2, numpy, tensorflow as tf, torch, facenet_pytorch, fer
from fer.fer import FER
print(f"fer {fer.__version__}, tensorflow {tf.__version__}, torch {torch.__version__}, "
      f"opencv {cv2.__version__}, numpy {numpy.__version__}")
PY
echo "ready: $venv"
