#!/usr/bin/env bash
# Ensures the benchmark venv (.venv, git-ignored) has the given PyPI packages; prints its python.
# Usage: tools/venv.sh PACKAGE... (e.g. pillow numpy, or torch)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q --upgrade pip >&2
fi
missing=()
for pkg in "$@"; do
  mod="$pkg"
  [ "$pkg" = pillow ] && mod=PIL
  [ "$pkg" = tensorflow-cpu ] && mod=tensorflow
  [ "$pkg" = pytorch-fid ] && mod=pytorch_fid
  [ "$pkg" = clean-fid ] && mod=cleanfid
  "$venv/bin/python" -c "import $mod" 2>/dev/null || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} into $venv (first use only)..." >&2
  "$venv/bin/pip" install -q "${missing[@]}" >&2
fi
echo "$venv/bin/python"
