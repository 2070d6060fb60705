#!/usr/bin/env bash
# Install fmnist and its data on a fresh machine. Idempotent; `make` calls it.
#   - Python packages: `pip install -e .[tensorflow,test]` into the active Python (use a venv if you like),
#     setuptools' default editable mode: it serves conf/ and experiments/ in place, so edits and new files show
#   - Fashion-MNIST: Debian's dataset-fashion-mnist where apt exists, else the official download
#   - PostgreSQL (Debian's postgresql) for scripts/tracking_server.sh and its test
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

# The tensorflow extra is TensorFlow's CPU-only build on Linux x86-64. The full build, if an earlier install left it,
# goes first: both install the same `tensorflow` module, and the full build's CUDA stubs print start-up lines.
if [ "$(uname -sm)" = "Linux x86_64" ] && "$PYTHON" -m pip show -q tensorflow 2>/dev/null \
    && ! "$PYTHON" -m pip show -q tensorflow-cpu 2>/dev/null; then
  echo "setup: replacing TensorFlow's full build with its CPU-only build (tensorflow-cpu)"
  "$PYTHON" -m pip uninstall -q -y tensorflow
fi
# The editable install finds the named experiments where Hydra looks for them, in conf/, through this link.
[ -d conf/experiment ] || { echo "setup: conf/experiment is not the link to experiments/ (a checkout without" \
  "symlinks?): run git config core.symlinks true, then check the repository out again" >&2; exit 1; }
"$PYTHON" -m pip install -q --disable-pip-version-check -e '.[tensorflow,test]'

MISSING=""
[ -d /usr/share/datasets/fashion-mnist ] || MISSING="dataset-fashion-mnist"
ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1 || command -v pg_ctl >/dev/null || MISSING="$MISSING postgresql"
if [ -n "$MISSING" ] && command -v apt-get >/dev/null; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $MISSING >/dev/null
fi
"$PYTHON" -m fmnist.data --download
