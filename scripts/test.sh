#!/usr/bin/env bash
# Set up a virtual environment and run every check CI runs: lint, the test suite, the example
# third-party plugin installed as a user would (its quick run and its tests), and the docs
# (HTML with warnings as errors, then every code sample as a doctest).
# CPU machines: torch's CPU wheel via constraints/cpu.txt. Set INVKIT_NO_CONSTRAINTS=1 to
# let pip pick the torch build for your platform (e.g. CUDA).
set -euo pipefail
cd "$(dirname "$0")/.."
constraints=(-c constraints/cpu.txt)
[ "${INVKIT_NO_CONSTRAINTS:-0}" = "1" ] && constraints=()
python3 -m venv .venv
. .venv/bin/activate
pip install -q "${constraints[@]}" -e ".[test,docs]"
pip install -q "${constraints[@]}" -e examples/invkit-linear-gaussian
ruff check .
pytest -q
invkit run linear_gaussian --preset quick --out "$(mktemp -d)/lg-quick" --quiet
pytest -q examples/invkit-linear-gaussian/tests
sphinx-build -W -q -b html docs docs/_build/html
sphinx-build -W -q -b doctest docs docs/_build/doctest
