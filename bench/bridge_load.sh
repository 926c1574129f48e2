#!/usr/bin/env bash
# Whole-process benchmark of loading a Python checkpoint into LibTorch parameters: ptpack's bridge
# (ptpack::libtorch::load_state_dict) against LibTorch's own routes (torch::pickle_load of the file's
# bytes, torch::jit::load of a TorchScript export) and stock Python (torch.load +
# load_state_dict), on torchvision vit_l_16 (1.2 GB, random init; bench/make_vit.py writes the
# state dict, the same values as a plain dict and as TorchScript into BUILD_DIR/bench-bridge).
# The C++ routes are bench/bridge_load.cc (bridge_load_bench, built with the bridge), the Python
# one bench/python_load.py. Every route runs RUNS times under `/usr/bin/time -f '%e %M'`, page
# cache warm (each file is cat once first); `cat FILE > /dev/null` is the page-cache floor, and
# `none` (build the module, load nothing) the process floor of the C++ routes: LibTorch's start-up
# and exit. Before timing, every route runs once with --check and must give the same checksum.
# Columns: load (the route's own timer: bytes to filled module), the same into a module whose
# memory was already touched (--prefault for C++; Python: the model built with its random init),
# in-process total (keys + build + load for C++, build + load for Python; no start-up or exit),
# whole process (GNU time's elapsed; and its user + sys CPU, steadier when other jobs share the
# cores), all the best of RUNS; peak RSS is the largest of RUNS.
# ptpack_map is load_state_dict with LoadOptions::share_mapping: the module's tensors pointed at
# the file's copy-on-write mapping instead of filled; its pages are read on first use, after the timing.
# Usage: bench/bridge_load.sh [BUILD_DIR=build] [RUNS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
runs=${2:-3}
bench=$build/bridge/libtorch/bridge_load_bench
out=$build/bench-bridge
[ -x "$bench" ] || { echo "no $bench: build it first (cmake --build $build --target bridge_load_bench)" >&2; exit 2; }
/usr/bin/python3 bench/make_vit.py "$out"
sd=$out/vit_l_16.pt plain=$out/vit_l_16_dict.pt ts=$out/vit_l_16_script.pt

echo "bench/bridge_load.sh $build $runs: $(date -u '+%F %H:%M UTC'), $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1))," \
  "$(free -g | awk '/^Mem:/ {print $2}') GiB RAM, Linux $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "model: torchvision vit_l_16, $(stat -c %s "$sd") bytes state dict ($(du -h --apparent-size "$sd" | cut -f1))"
cat "$sd" "$plain" "$ts" > /dev/null  # warm the page cache: every route reads from memory

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Every route once with --check: the loaded values must be the same everywhere.
declare -A route=(
  [ptpack]="$bench ptpack $sd"
  [ptpack_ts]="$bench ptpack $ts"
  [ptpack_map]="$bench ptpack_map $sd"
  [pickle_load]="$bench pickle_load $plain --keys $sd"
  [jit_load]="$bench jit_load $ts --keys $sd"
  [python]="/usr/bin/python3 bench/python_load.py $sd"
  [python_skip]="/usr/bin/python3 bench/python_load.py $sd --skip-init"
)
sums=""
for r in ptpack ptpack_ts ptpack_map pickle_load jit_load python_skip; do
  c=$(${route[$r]} --check | python3 -c "import json, sys; print(json.load(sys.stdin)['checksum'])")
  sums+="${sums:+ }$r=$c"
done
[ "$(echo "$sums" | tr ' ' '\n' | sed -n 's/.*=//p' | sort -u | wc -l)" = 1 ] \
  || { echo "routes disagree on the loaded values: $sums" >&2; exit 1; }
echo "every route loaded the same values (checksum ${sums##*=})"

# measure LABEL COMMAND...: RUNS runs; "elapsed peak_kb user sys json" lines in $tmp/LABEL.
measure() {
  local label=$1; shift
  : > "$tmp/$label"
  for _ in $(seq "$runs"); do
    if [ "$label" = cat ]; then
      /usr/bin/time -f '%e %M %U %S' -o "$tmp/time" "$@" > /dev/null; : > "$tmp/out"
    else
      /usr/bin/time -f '%e %M %U %S' -o "$tmp/time" "$@" > "$tmp/out"
    fi
    local json; json=$(tail -1 "$tmp/out"); [ -n "$json" ] || json='{}'
    echo "$(cat "$tmp/time") $json" >> "$tmp/$label"
  done
}
# summary LABEL FIELD: best of a JSON field ("-" when absent); best elapsed; largest peak RSS (MB).
best_field() { python3 -c "import json, sys
v = [json.loads(l.split(' ', 4)[4]).get(sys.argv[2]) for l in open(sys.argv[1])]
v = [x for x in v if x is not None]
print(f'{min(v):.2f} s' if v else '–')" "$tmp/$1" "$2"; }
best_elapsed() { awk 'NR == 1 || $1 < m {m = $1} END {printf "%.2f s", m}' "$tmp/$1"; }
best_cpu() { awk 'NR == 1 || $3 + $4 < m {m = $3 + $4; u = $3; s = $4} END {printf "%.2f + %.2f s", u, s}' "$tmp/$1"; }
peak_mb() { awk '$2 > m {m = $2} END {printf "%d MB", m / 1024}' "$tmp/$1"; }

measure cat cat "$sd"
measure none "$bench" none "$sd"
measure none_pf "$bench" none "$sd" --prefault
for r in ptpack ptpack_ts ptpack_map pickle_load jit_load; do
  # shellcheck disable=SC2086  # the route's command line is split on purpose
  measure "$r" ${route[$r]}
  # shellcheck disable=SC2086
  measure "${r}_pf" ${route[$r]} --prefault
done
# shellcheck disable=SC2086
measure python ${route[python]}
# shellcheck disable=SC2086
measure python_skip ${route[python_skip]}

echo
echo "| route | load | load, module memory touched | in-process total | whole process | whole process CPU (user + sys) | peak RSS |"
echo "|---|---|---|---|---|---|---|"
echo "| \`cat FILE > /dev/null\` (page-cache floor) | – | – | – | $(best_elapsed cat) | $(best_cpu cat) | $(peak_mb cat) |"
echo "| C++ process floor: build the module, load nothing (\`none\`) | – | – | $(best_field none seconds_total) | $(best_elapsed none) | $(best_cpu none) | $(peak_mb none) |"
echo "| same, module memory touched (\`none --prefault\`) | – | – | $(best_field none_pf seconds_total) | $(best_elapsed none_pf) | $(best_cpu none_pf) | $(peak_mb none_pf) |"
row() {  # row LABEL KEY
  echo "| $1 | $(best_field "$2" seconds_load) | $(best_field "${2}_pf" seconds_load) | $(best_field "$2" seconds_total) | $(best_elapsed "$2") | $(best_cpu "$2") | $(peak_mb "$2") |"
}
row "ptpack: \`ptpack::libtorch::load_state_dict(module, \"vit_l_16.pt\")\`" ptpack
row "ptpack, from the TorchScript export (\`load_state_dict(module, \"vit_l_16_script.pt\")\`)" ptpack_ts
row "ptpack \`load_state_dict\` with \`share_mapping\` (\`ptpack_map\`: module tensors \`set_\` to the file's copy-on-write mapping, no copy)" ptpack_map
row "LibTorch: read file + \`torch::pickle_load\` (plain-dict file) + copy" pickle_load
row "LibTorch: \`torch::jit::load\` (TorchScript export) + copy" jit_load
echo "| Python: build (random init) + \`torch.load\` + \`load_state_dict\` | – | $(best_field python seconds_load) | $(best_field python seconds_total) | $(best_elapsed python) | $(best_cpu python) | $(peak_mb python) |"
echo "| Python: build (init skipped) + \`torch.load\` + \`load_state_dict\` | $(best_field python_skip seconds_load) | – | $(best_field python_skip seconds_total) | $(best_elapsed python_skip) | $(best_cpu python_skip) | $(peak_mb python_skip) |"
echo
echo "phases (best run of each):"
for r in ptpack pickle_load pickle_load_pf jit_load jit_load_pf python python_skip; do
  python3 -c "import json, sys
rows = [json.loads(l.split(' ', 4)[4]) for l in open(sys.argv[1])]
b = min(rows, key=lambda j: j['seconds_load'])
print(sys.argv[2] + ':', ', '.join(f'{k[8:]} {v:.3f} s' for k, v in b.items() if k.startswith('seconds_')))" "$tmp/$r" "$r"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
