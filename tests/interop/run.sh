#!/usr/bin/env bash
# Generates the interop artifacts with stock torch (only when missing or the generator changed)
# and checks ptpack against them. Usage: run.sh PTPACK OUTDIR. PTPACK_SLOW=1 adds the >4 GiB case.
set -euo pipefail
ptpack=$1
out=$2
here=$(cd "$(dirname "$0")" && pwd)
slow=()
[ "${PTPACK_SLOW:-0}" = 1 ] && slow=(--slow)
stamp="$out/.generator-stamp"
want=$(cat "$here"/*.py | sha256sum | cut -c1-16)${slow[*]:-}
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  rm -rf "$out"
  /usr/bin/python3 "$here/generate.py" "$out" "${slow[@]}"
  echo "$want" > "$stamp"
fi
exec /usr/bin/python3 "$here/check.py" --ptpack "$ptpack" --dir "$out" "${slow[@]}"
