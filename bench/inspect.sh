#!/usr/bin/env bash
# Whole-process benchmark of inspection: `ptpack tensors --json` against the stock Python way
# (torch.load, then list every key with dtype and shape), and `cat` of the same bytes (what any
# tool that reads the data pays). Wall time is the median of N runs (hyperfine), peak RSS from
# GNU time. Usage: bench/inspect.sh [BUILD_DIR=build] [RUNS=5]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
runs=${2:-5}
ptpack=$build/tools/ptpack/ptpack
out=out/bench
/usr/bin/python3 bench/make_models.py $out resnet50 vit_l_16

list_py='import sys, torch; sd = torch.load(sys.argv[1]); [print(k, v.dtype, tuple(v.shape)) for k, v in sd.items()]'
peak_kb() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
median_ms() {
  hyperfine -N --runs "$runs" --export-json /tmp/ptpack-bench.json "$1" > /dev/null 2>&1 || hyperfine --runs "$runs" --export-json /tmp/ptpack-bench.json "$1" > /dev/null
  python3 -c "import json; print(round(json.load(open('/tmp/ptpack-bench.json'))['results'][0]['median']*1000, 1))"
}

echo "| file | size | ptpack tensors --json | peak RSS | torch.load + list | peak RSS | cat > /dev/null |"
echo "|---|---|---|---|---|---|---|"
for f in resnet50.pt resnet50_legacy.pt vit_l_16.pt vit_l_16_legacy.pt; do
  p=$out/$f
  size=$(du -h --apparent-size "$p" | cut -f1)
  cat "$p" > /dev/null  # warm the page cache: every column below reads from memory
  t_ptpack=$(median_ms "$ptpack tensors --json $p")
  m_ptpack=$(peak_kb "$ptpack" tensors --json "$p")
  t_py=$(median_ms "/usr/bin/python3 -c '$list_py' $p")
  m_py=$(peak_kb /usr/bin/python3 -c "$list_py" "$p")
  t_cat=$(median_ms "cat $p")
  echo "| $f | $size | ${t_ptpack} ms | $((m_ptpack / 1024)) MB | ${t_py} ms | $((m_py / 1024)) MB | ${t_cat} ms |"
done
