# Shared setup of the crop benches (sourced by people_photos.sh, crop_score.sh and
# crop_speed.sh): installs the Debian packages named in the array `need` (apt, when any is
# missing), then the venv $VENV with OpenCV 4.x (its Haar cascades are the reference face
# detector; 5.0 moved them out of the main wheel), numpy and Pillow, and sets PY.
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import cv2, PIL, numpy; assert cv2.__version__.startswith("4.")' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q 'opencv-python-headless>=4.5,<5' numpy pillow
fi
PY="$VENV/bin/python"
