#!/bin/sh
# Prints the Python interpreter `make venv` builds the virtual env with (override: `make venv PYTHON=...`).
#
# Why not just `python3`: the engine is CPU-bound Python, and how the interpreter itself was built matters.
# A distribution's /usr/bin/python3 (Debian, Ubuntu, Fedora) is built with profile-guided and link-time
# optimisation (Debian and Ubuntu also link libpython into the executable); a source build with default flags
# (pyenv's, which often comes first on PATH) is not, and ran 7-17 % slower on this project's benchmarks
# (docs/engine.md, "Interpreter and start-up"). So the first interpreter below that is Python >= 3.11 and can
# create a virtual env (venv and ensurepip present: Debian ships them as python3-venv) wins; `python3` on PATH
# is the fallback.
# PICK_PYTHON_CANDIDATES replaces the list (the tests use it).
set -u
for candidate in ${PICK_PYTHON_CANDIDATES:-/usr/bin/python3 /usr/local/bin/python3 python3}; do
    if "$candidate" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
        command -v "$candidate"
        exit 0
    fi
done
echo python3
