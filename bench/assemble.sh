#!/usr/bin/env bash
# Whole-process benchmark of the topology-first workflow: `ptpack assemble TOPO CKPT -o DIR` (one
# deployable torch.package per checkpoint) against `cp` of the checkpoint (the disk limit; with and
# without `sync FILE`, since ptpack fsyncs its outputs) and the stock Python way
# (bench/python_assemble.py: build the torchvision model, torch.load, load_state_dict,
# PackageExporter.save_pickle, fsync; and with the model's random init skipped). For torchvision
# resnet50 and vit_l_16 (random init, no download), created once in out/bench: the checkpoint (a
# state dict, torch.save; make_models.py) and the untrained model exported with PackageExporter;
# the topology is rebuilt from it by the ptpack under test. Four checkpoints are four hard links to
# the one checkpoint (same bytes, page cache warm). Every destination is removed (and `sync`ed)
# before each run. Wall time is the mean of RUNS (hyperfine), peak RSS from GNU time (the largest
# process of the command line).
# Then, as root with mkfs.xfs and loop devices: the same on a loop-mounted XFS (reflink=1) image,
# with the disk space the outputs take (df, and `filefrag -v` shared extents).
# Usage: bench/assemble.sh [BUILD_DIR=build] [RUNS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
runs=${2:-3}
ptpack=$build/tools/ptpack/ptpack
out=out/bench
dst=out/bench-assemble
[ -x "$ptpack" ] || { echo "no $ptpack: build it first (scripts/build $build)" >&2; exit 2; }
mnt=$dst/xfs
cleanup() { if mountpoint -q "$mnt" 2> /dev/null; then umount "$mnt"; fi; rm -rf "$dst"; }
trap cleanup EXIT
cleanup
mkdir -p "$dst"
/usr/bin/python3 bench/make_models.py $out resnet50 vit_l_16
for name in resnet50 vit_l_16; do
  [ -f $out/${name}_package.pt ] || /usr/bin/python3 bench/python_assemble.py $name - $out/${name}_package.pt
done

echo "bench/assemble.sh $build $runs: $(date -u '+%F %H:%M UTC'), $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1))," \
  "$(free -g | awk '/^Mem:/ {print $2}') GiB RAM, Linux $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg)"

# Peak RSS (MB) of a shell command line (the largest process it runs).
peak_mb() { /usr/bin/time -f %M bash -c "$1" 2>&1 >/dev/null | tail -1 | awk '{printf "%d", $1 / 1024}'; }
mean_s() {  # mean_s RUNS PREPARE COMMAND-LINE -> "mean ± stddev"
  # (hyperfine's warnings about outliers would land in the table: kept for a failure only)
  hyperfine --runs "$1" --prepare "$2" --export-json /tmp/ptpack-bench.json "$3" > /dev/null 2> /tmp/ptpack-bench.err \
    || { cat /tmp/ptpack-bench.err >&2; return 1; }
  python3 -c "import json; r = json.load(open('/tmp/ptpack-bench.json'))['results'][0]
print(f\"{r['mean']:.2f} ± {(r['stddev'] or 0):.2f}\")"
}
declare -A mean
row() {  # row KEY LABEL RUNS CLEAN COMMAND-LINE   (CLEAN: removes the outputs)
  local key=$1 label=$2 n=$3 clean=$4 cmd=$5
  eval "$clean"; sync
  local t; t=$(mean_s "$n" "$clean; sync" "$cmd")
  eval "$clean"; sync
  local m; m=$(peak_mb "$cmd")
  eval "$clean"; sync
  mean[$key]=${t%% *}
  echo "| $label | ${t} s | ${m} MB |"
}
ratio() { python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}')" "$1" "$2"; }
avail_bytes() { df -B1 --output=avail "$1" | tail -1; }

for name in resnet50 vit_l_16; do
  ckpt=$out/$name.pt
  pkg=$out/${name}_package.pt
  topo=$dst/${name}_topology.pt
  $ptpack topology -q "$pkg" -o "$topo"
  size=$(stat -c %s "$ckpt")
  if [ "$(avail_bytes $dst)" -lt $((size + (1 << 30))) ]; then
    echo; echo "torchvision $name skipped: less than $(( (size + (1 << 30)) >> 20 )) MB free on $(df --output=target $dst | tail -1)"
    continue
  fi
  mkdir -p $dst/ckpts
  for i in 1 2 3 4; do ln -f "$ckpt" $dst/ckpts/c$i.pt; done
  cat "$ckpt" > /dev/null  # warm the page cache: every row reads from memory
  echo
  echo "torchvision $name: checkpoint $(du -h --apparent-size "$ckpt" | cut -f1) ($(stat -c %s "$ckpt") bytes)," \
    "topology $(stat -c %s "$topo") bytes (from $(du -h --apparent-size "$pkg" | cut -f1) package);" \
    "$(date -u +%F), $(nproc) cores, $(df --output=fstype "$dst" | tail -1), $runs runs"
  echo
  echo "| command | mean wall | peak RSS |"
  echo "|---|---|---|"
  row cp "\`cp CKPT X\`" "$runs" "rm -f $dst/cp.pt" "cp $ckpt $dst/cp.pt"
  row cps "\`cp CKPT X && sync X\`" "$runs" "rm -f $dst/cp.pt" "cp $ckpt $dst/cp.pt && sync $dst/cp.pt"
  row one "\`ptpack assemble TOPO CKPT -o DIR\`" "$runs" "rm -rf $dst/one; mkdir $dst/one" \
    "$ptpack assemble -q $topo $ckpt -o $dst/one"
  if [ "$(avail_bytes $dst)" -gt $((4 * size + (1 << 30))) ]; then
    row cp4 "\`cp\` × 4 + \`sync\` (the disk limit of the next row)" "$runs" "rm -f $dst/cp?.pt" \
      "for i in 1 2 3 4; do cp $ckpt $dst/cp\$i.pt; done; sync $dst/cp?.pt"
    row four "\`ptpack assemble TOPO c1 c2 c3 c4 -o DIR -j 2\`" "$runs" "rm -rf $dst/four; mkdir $dst/four" \
      "$ptpack assemble -q $topo $dst/ckpts/c1.pt $dst/ckpts/c2.pt $dst/ckpts/c3.pt $dst/ckpts/c4.pt -o $dst/four -j 2"
  else
    echo "| (four checkpoints skipped: less than $(( (4 * size + (1 << 30)) >> 20 )) MB free) | | |"
  fi
  row py "python: build model + \`torch.load\` + \`load_state_dict\` + \`PackageExporter.save_pickle\`" "$runs" \
    "rm -f $dst/py.pt" "/usr/bin/python3 bench/python_assemble.py $name $ckpt $dst/py.pt"
  row pyskip "python, init skipped (\`--skip-init\`: the fastest Python way)" "$runs" \
    "rm -f $dst/py.pt" "/usr/bin/python3 bench/python_assemble.py --skip-init $name $ckpt $dst/py.pt"
  echo
  echo "ptpack assemble / cp: $(ratio ${mean[one]} ${mean[cp]}); / (cp + sync): $(ratio ${mean[one]} ${mean[cps]})"
  [ -n "${mean[four]:-}" ] && echo "ptpack assemble (4 checkpoints, -j 2) / (4 × cp + sync): $(ratio ${mean[four]} ${mean[cp4]})"
  echo "python / ptpack assemble: $(ratio ${mean[py]} ${mean[one]}); python with init skipped / ptpack assemble: $(ratio ${mean[pyskip]} ${mean[one]})"
  # What ptpack reports for one run (bytes handed to copy_file_range vs rebuilt in user space).
  rm -rf $dst/one; mkdir $dst/one
  $ptpack assemble --json "$topo" "$ckpt" -o $dst/one | python3 -c "import json, sys
p = json.load(sys.stdin)['packages'][0]
print('ptpack --json:', ', '.join(f'{k} {p.get(k)}' for k in ('status', 'keys', 'data_bytes', 'cloned_or_copied_bytes', 'gathered_bytes', 'seconds')))"
  rm -rf $dst/one $dst/ckpts $dst/four
  unset 'mean[four]'
done

# Reflink: a loop-mounted XFS image holding the vit_l_16 checkpoint and its topology.
reflink() {
  if [ "$(id -u)" != 0 ] || ! command -v mkfs.xfs > /dev/null || ! losetup -f > /dev/null 2>&1; then
    echo; echo "reflink measurement skipped: needs root, mkfs.xfs (apt-get install -y xfsprogs) and a free loop device"
    return 0
  fi
  local name=vit_l_16 ckpt=$out/vit_l_16.pt img=$dst/xfs.img
  local size; size=$(stat -c %s "$ckpt")
  if [ "$(avail_bytes $dst)" -lt $((size + (1 << 30))) ] || [ ! -f "$dst/${name}_topology.pt" ]; then
    echo; echo "reflink measurement skipped: less than $(( (size + (1 << 30)) >> 20 )) MB free for the image"
    return 0
  fi
  truncate -s $((3 * size + (1 << 30))) "$img"
  mkfs.xfs -q -f -m reflink=1 "$img"
  mkdir -p "$mnt"
  if ! mount -o loop,discard "$img" "$mnt"; then
    echo; echo "reflink measurement skipped: cannot loop-mount an XFS image"; return 0
  fi
  cp "$ckpt" "$mnt/$name.pt"
  cp "$dst/${name}_topology.pt" "$mnt/topo.pt"
  for i in 1 2 3 4; do ln -f "$mnt/$name.pt" "$mnt/c$i.pt"; done
  sync -f "$mnt"
  cat "$mnt/$name.pt" > /dev/null
  echo
  echo "torchvision $name on a loop-mounted XFS image (mkfs.xfs -m reflink=1, mounted -o loop,discard), $runs runs"
  echo
  echo "| command | mean wall | peak RSS |"
  echo "|---|---|---|"
  if [ "$(avail_bytes $dst)" -gt $((size + (1 << 30))) ]; then  # a real copy fills the image file
    row xcp "\`cp --reflink=never CKPT X && sync X\`" "$runs" "rm -f $mnt/cp.pt" \
      "cp --reflink=never $mnt/$name.pt $mnt/cp.pt && sync $mnt/cp.pt"
  else
    echo "| (\`cp --reflink=never\` skipped: less than $(( (size + (1 << 30)) >> 20 )) MB free beside the image) | | |"
  fi
  row xclone "\`cp --reflink=always CKPT X && sync X\`" "$runs" "rm -f $mnt/cp.pt" \
    "cp --reflink=always $mnt/$name.pt $mnt/cp.pt && sync $mnt/cp.pt"
  row xone "\`ptpack assemble TOPO CKPT -o DIR\`" "$runs" "rm -rf $mnt/one; mkdir $mnt/one" \
    "$ptpack assemble -q $mnt/topo.pt $mnt/$name.pt -o $mnt/one"
  row xfour "\`ptpack assemble TOPO c1 c2 c3 c4 -o DIR -j 2\`" "$runs" "rm -rf $mnt/four; mkdir $mnt/four" \
    "$ptpack assemble -q $mnt/topo.pt $mnt/c1.pt $mnt/c2.pt $mnt/c3.pt $mnt/c4.pt -o $mnt/four -j 2"
  echo
  used() { sync -f "$mnt"; df -B1 --output=used "$mnt" | tail -1; }
  space() {  # space LABEL OUTPUT-FILE... (run after the outputs were written; before = $before)
    local label=$1; shift
    local after; after=$(used)
    local apparent=0 shared=0 f
    for f in "$@"; do
      apparent=$((apparent + $(stat -c %s "$f")))
      shared=$((shared + $(filefrag -v "$f" | awk -F: '/^ *[0-9]+:/ && /shared/ {n += $4} END {print n + 0}') * 4096))
    done
    echo "$label: outputs $apparent bytes, new disk space $((after - before)) bytes (df), in shared extents $shared bytes (filefrag -v)"
  }
  local before
  rm -rf "$mnt/one" "$mnt/four" "$mnt/cp.pt"; mkdir "$mnt/one" "$mnt/four"
  before=$(used); cp --reflink=always "$mnt/$name.pt" "$mnt/cp.pt"; space "cp --reflink=always" "$mnt/cp.pt"; rm -f "$mnt/cp.pt"
  before=$(used); $ptpack assemble -q "$mnt/topo.pt" "$mnt/$name.pt" -o "$mnt/one"; space "ptpack assemble (1 checkpoint)" "$mnt"/one/*
  before=$(used); $ptpack assemble -q "$mnt/topo.pt" "$mnt"/c?.pt -o "$mnt/four" -j 2; space "ptpack assemble (4 checkpoints)" "$mnt"/four/*
}
reflink  # the EXIT trap unmounts (umount detaches the loop device) and removes $dst
