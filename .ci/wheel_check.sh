#!/usr/bin/env bash
# The wheel works outside the checkout: build it, install it into a fresh virtual environment, and from
# another directory build a small dataset from the shipped behavior policies and train on it.
# Dependencies come from pip's cache (or index) as for any install; no new tools are needed.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
python=${PYTHON:-$repo/.venv/bin/python}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/brackit-wheel.XXXXXX")
start=$SECONDS
trap 'rm -rf "$tmp"; echo "wheel check: $((SECONDS - start)) s in all (with cleanup)"' EXIT

# from a copy of what git tracks or would track: no stale build/ and nothing ignored gets in
mkdir "$tmp/src"
git ls-files -z --cached --others --exclude-standard \
  | tar --null --files-from=- --ignore-failed-read -cf - 2>/dev/null | tar -xf - -C "$tmp/src"
"$python" -m pip wheel --quiet --no-deps -w "$tmp/dist" "$tmp/src"
wheel=$(ls "$tmp"/dist/brackit-*.whl)
listing=$("$python" -m zipfile -l "$wheel")
for member in brackit/protocol_data/behavior/hopper.npz brackit/protocol_data/behavior/hopper.card.json \
  brackit/studies/brac-paper.toml brackit/py.typed licenses/LICENSE; do
  grep -q "$member" <<<"$listing" || { echo "wheel check: $member is missing from $wheel" >&2; exit 1; }
done

"$python" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet --no-compile "$wheel"  # no .pyc for unused modules

mkdir "$tmp/work"
cd "$tmp/work"  # outside the checkout: only the installed wheel can be imported
"$tmp/venv/bin/python" -c 'import brackit, sys; sys.exit(0 if "site-packages" in brackit.__file__ else 1)'
"$tmp/venv/bin/brackit" --version
"$tmp/venv/bin/brackit" data build hopper-eps1 --size 500 --out hopper.npz
"$tmp/venv/bin/brackit" train bc --data hopper.npz --steps 20 --eval-episodes 1
test -f runs/bc-hopper-*/checkpoint.npz
echo "wheel check: passed after $((SECONDS - start)) s"
