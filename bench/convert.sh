#!/usr/bin/env bash
# Whole-process benchmark of `ptpack convert` against `cp` of the same file (the disk limit; with
# and without `sync FILE`, since ptpack fsyncs its output) and the stock Python way (torch.load,
# then torch.save or a safetensors writer; bench/python_convert.py). Every destination is removed
# before each run (replacing an existing file adds the cost of freeing its blocks). Wall time is
# the median of RUNS (hyperfine), peak RSS from GNU time.
# Usage: bench/convert.sh [BUILD_DIR=build] [RUNS=3] [SYNTHETIC_GB=5]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
runs=${2:-3}
gb=${3:-5}
ptpack=$build/tools/ptpack/ptpack
out=out/bench
dst=out/bench-convert
mkdir -p "$dst"
/usr/bin/python3 bench/make_models.py $out vit_l_16
/usr/bin/python3 bench/make_synthetic.py $out/synthetic_${gb}gb.pt "$gb"

# Peak RSS (MB) of a shell command line (the largest process it runs).
peak_mb() { /usr/bin/time -f %M bash -c "$1" 2>&1 >/dev/null | tail -1 | awk '{printf "%d", $1 / 1024}'; }
median_s() {  # median_s RUNS DST COMMAND-LINE
  hyperfine --runs "$1" --prepare "rm -f $2" --export-json /tmp/ptpack-bench.json "$3" > /dev/null
  python3 -c "import json; print(round(json.load(open('/tmp/ptpack-bench.json'))['results'][0]['median'], 2))"
}
row() {  # row LABEL RUNS DST COMMAND-LINE
  local label=$1 n=$2 target=$3 cmd=$4
  rm -f "$target"
  local t; t=$(median_s "$n" "$target" "$cmd")
  rm -f "$target"
  local m; m=$(peak_mb "$cmd")
  rm -f "$target" "${target%.safetensors}"-0*.safetensors "$target".index.json 2>/dev/null || true
  echo "| $label | ${t} s | ${m} MB |"
}

for src in $out/vit_l_16.pt $out/synthetic_${gb}gb.pt; do
  name=$(basename "$src" .pt)
  size=$(du -h --apparent-size "$src" | cut -f1)
  cat "$src" > /dev/null  # warm the page cache: every row reads from memory
  py_runs=$runs; [ "$name" != vit_l_16 ] && py_runs=1
  echo
  echo "$name ($size), $(date -u +%F), $(nproc) cores"
  echo
  echo "| command | median wall | peak RSS |"
  echo "|---|---|---|"
  row "cp" "$runs" "$dst/cp.pt" "cp $src $dst/cp.pt"
  row "cp + sync FILE" "$runs" "$dst/cp.pt" "cp $src $dst/cp.pt && sync $dst/cp.pt"
  row "ptpack convert -> .pt" "$runs" "$dst/o.pt" "$ptpack convert -q $src $dst/o.pt"
  row "ptpack convert -> .safetensors" "$runs" "$dst/o.safetensors" "$ptpack convert -q $src $dst/o.safetensors"
  row "ptpack convert -> 2GB shards + index" "$runs" "$dst/s.safetensors" "$ptpack convert -q --max-shard-size 2GB $src $dst/s.safetensors"
  row "ptpack convert --dtype bf16 -> .safetensors" "$runs" "$dst/b.safetensors" "$ptpack convert -q --dtype bf16 $src $dst/b.safetensors"
  row "python: torch.load + torch.save" "$py_runs" "$dst/p.pt" "/usr/bin/python3 bench/python_convert.py $src $dst/p.pt"
  row "python: torch.load + safetensors writer" "$py_runs" "$dst/p.safetensors" "/usr/bin/python3 bench/python_convert.py $src $dst/p.safetensors"
done
