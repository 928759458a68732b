#!/usr/bin/env bash
# Set up a virtual environment and run every check CI runs: lint, the test suite, the example
# third-party plugins and the sbibm plugin installed as a user would (their tests, a quick
# run), and the docs (HTML with warnings as errors, then every code sample as a doctest).
# CPU machines: torch's CPU wheel via constraints/cpu.txt. Set INVKIT_NO_CONSTRAINTS=1 to
# let pip pick the torch build for your platform (e.g. CUDA).
set -euo pipefail
cd "$(dirname "$0")/.."
constraints=(-c constraints/cpu.txt)
[ "${INVKIT_NO_CONSTRAINTS:-0}" = "1" ] && constraints=()
python3 -m venv .venv
. .venv/bin/activate
pip install -q "${constraints[@]}" -e ".[test,docs,tensorboard]" \
    -e examples/invkit-linear-gaussian -e examples/invkit-oscillator -e plugins/invkit-sbibm
# sbibm's data files (observations, reference posteriors) without its uninstallable deps
pip install -q --no-deps sbibm==1.1.0
ruff check .
pytest -q
invkit run linear_gaussian --preset quick --out "$(mktemp -d)/lg-quick" --quiet
pytest -q examples/invkit-linear-gaussian/tests examples/invkit-oscillator/tests \
    plugins/invkit-sbibm/tests
sphinx-build -W -q -b html docs docs/_build/html
sphinx-build -W -q -b doctest docs docs/_build/doctest
