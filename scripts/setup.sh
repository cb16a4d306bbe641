#!/usr/bin/env bash
# Set up napari-weakbeam on a fresh Debian/Ubuntu machine with Python 3.11+.
#   scripts/setup.sh          -> .venv with the plugin (for scripts/demo)
#   scripts/setup.sh --test   -> also Xvfb/xcb packages, SLURM + munge and the test tools (for scripts/test)
# Installs only what is missing; a torch already in the venv is left alone; without a GPU the
# CPU build of torch is installed (a plain `pip install torch` would pull a multi-GB CUDA build).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
if [ -z "${PYTHON:-}" ]; then  # the first Python >= 3.11 on PATH
  for c in python3 python3.13 python3.12 python3.11; do
    if command -v "$c" >/dev/null && "$c" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then PYTHON=$c; break; fi
  done
  [ -n "${PYTHON:-}" ] || { echo "napari-weakbeam needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)"; exit 1; }
fi
TEST=0; [ "${1:-}" = "--test" ] && TEST=1

# System packages Qt needs (xcb) and, for tests, a virtual X server and a single-node SLURM
# (slurm-wlm + munge, for scripts/slurm-localhost.sh: 9 packages, 10-16 s to install here).
pkgs="libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxkbcommon-x11-0 libgl1 libegl1 libgl1-mesa-dri libxcb-shape0 libxcb-randr0 libxcb-render-util0 libxcb-image0 libfontconfig1 libdbus-1-3"
[ $TEST = 1 ] && pkgs="$pkgs xvfb xauth slurm-wlm munge"
# A fresh Debian/Ubuntu python3 lacks venv/ensurepip until python3-venv is installed.
if ! "$PYTHON" -c "import venv, ensurepip" 2>/dev/null; then
  pkgs="$pkgs python3-venv"
fi
missing=""
if command -v dpkg >/dev/null; then
  for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
fi
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" != 0 ] && SUDO=sudo
  echo "installing system packages:$missing"
  $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
extras="pyqt6"; [ $TEST = 1 ] && extras="test"
# One set-up marker shared by scripts/demo and scripts/test: "<pyproject hash> <extras...>". The
# test extras include PyQt6, so a test set-up serves the demo too; nothing installed is reinstalled.
marker="$VENV/.weakbeam-setup"
hash=$(sha1sum pyproject.toml | cut -c1-12)
have=""
if [ -f "$marker" ]; then
  read -r mhash have < "$marker" || true
  if [ "${mhash:-}" != "$hash" ]; then have=""; fi
fi
case " $have " in
  *" test "*) exit 0 ;;
  *" $extras "*) exit 0 ;;
esac

torch_req=""
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
    torch_req=""          # a GPU: let pip take the default (CUDA) build
  else
    torch_req="torch==2.13.0"   # no GPU: the CPU build
  fi
fi
$PIP install -q --upgrade pip >/dev/null 2>&1 || true
if ! $PIP install -q $torch_req -e ".[$extras]"; then
  if [ -n "$torch_req" ]; then
    echo "torch==2.13.0 is not available here; installing the CPU build from download.pytorch.org"
    $PIP install -q torch --index-url https://download.pytorch.org/whl/cpu
    $PIP install -q -e ".[$extras]"
  else
    exit 1
  fi
fi
rm -f "$VENV"/.weakbeam-*  # older per-extras stamps
echo "$hash $have $extras" > "$marker"
