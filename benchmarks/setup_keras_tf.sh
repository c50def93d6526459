#!/usr/bin/env bash
# Create benchmarks/.venv-keras-tf: a separate virtual environment with Keras 3 on the TensorFlow
# backend (CPU), used by benchmarks/imdb_epoch.py as the "keras3-tensorflow" contender.
#
# It is kept apart from the project's .venv (which runs Keras with the torch backend) so that
# TensorFlow never lands there. Idempotent: an existing, working environment is left as it is;
# a broken one is repaired by re-running pip.
#
# Usage:  bash benchmarks/setup_keras_tf.sh            (PYTHON=python3.11 to pick the interpreter)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-keras-tf"
python="${PYTHON:-python3}"

check() {
    "$venv/bin/python" -c "import tensorflow, keras, numpy" 2>/dev/null &&
        [ "$(KERAS_BACKEND=tensorflow "$venv/bin/python" -c \
            'import keras; print(keras.backend.backend())' 2>/dev/null)" = "tensorflow" ]
}

if [ -x "$venv/bin/python" ] && check; then
    echo "setup_keras_tf: $venv is ready (nothing to do)"
else
    if [ ! -x "$venv/bin/python" ]; then
        echo "setup_keras_tf: creating $venv with $("$python" -V 2>&1)"
        "$python" -m venv "$venv"
    fi
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet tensorflow-cpu keras numpy
    if ! check; then
        echo "setup_keras_tf: $venv was installed but 'import tensorflow, keras' or the" \
            "tensorflow backend check failed" >&2
        exit 1
    fi
fi

KERAS_BACKEND=tensorflow TF_CPP_MIN_LOG_LEVEL=2 "$venv/bin/python" - <<'PY'
import keras
import numpy
import tensorflow as tf

print(
    f"setup_keras_tf: tensorflow {tf.__version__}, keras {keras.__version__} "
    f"(backend {keras.backend.backend()}), numpy {numpy.__version__}"
)
PY
