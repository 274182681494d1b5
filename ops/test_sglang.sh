#!/usr/bin/env bash
# `make test-sglang`: the sglang backend's tests (tests/sglang) in their own virtualenv.
#
# Creates .venv-sglang (or $SGLANG_VENV) when missing, installs torch/torchvision (exact pins from
# ops/constraints.txt on x86_64) and then the project with its [test,sglang] extras (~11 GB: sglang
# pins torch 2.14.1 with its CUDA libraries), and runs the tests. Idempotent: an existing venv is
# reused, and the install step is skipped while pyproject.toml and this script are older than its
# stamp. Extra arguments (and $PYTEST_ARGS) go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${SGLANG_VENV:-.venv-sglang}
PY="$VENV/bin/python"
STAMP="$VENV/.installed-sglang"
CONSTRAINTS=()
if [ "$(uname -m)" = "x86_64" ]; then CONSTRAINTS=(-c ops/constraints.txt); fi

began=$SECONDS
progress() { echo "==> [test-sglang $((SECONDS - began))s] $*"; }

if [ ! -x "$PY" ]; then
    progress "creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi

if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ] || [ "$0" -nt "$STAMP" ]; then
    progress "upgrading pip"
    "$PY" -m pip install -q --upgrade pip
    progress "installing torch and torchvision"
    "$PY" -m pip install -q "${CONSTRAINTS[@]}" torch torchvision
    progress "installing triptych[test,sglang] (sglang 0.5.23 and its dependencies, several minutes)"
    "$PY" -m pip install -q "${CONSTRAINTS[@]}" -e '.[test,sglang]'
    if ! "$PY" -c "import sglang" 2>/dev/null; then
        echo "test-sglang: sglang is not installed in $VENV; does pyproject.toml define the [sglang] extra?" >&2
        exit 1
    fi
    touch "$STAMP"
    progress "installed: $("$PY" -c 'import sglang, torch, transformers as t; print(f"sglang {sglang.__version__}, torch {torch.__version__}, transformers {t.__version__}")')"
else
    progress "reusing $VENV (installed; delete $STAMP to reinstall)"
fi

progress "running tests/sglang"
# shellcheck disable=SC2086  # PYTEST_ARGS is a list of words on purpose
status=0
"$VENV/bin/pytest" -q -W ignore::DeprecationWarning tests/sglang ${PYTEST_ARGS:-} "$@" || status=$?
progress "done: pytest exit $status"
exit $status
