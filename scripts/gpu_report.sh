#!/usr/bin/env bash
# The CPU-vs-GPU table on a machine with a hardware GPU, in one command (issue 12): every path
# timed side by side by `downhill bench` against the machine's own measured bandwidth and f32
# peak, for the lesson's 2-2-1 at 10M and 100M points, 8-64-64-1 at 1M and 10M, and
# 16-256-256-1 at 1M; then the two GPU kernel families side by side on the shapes both take
# (examples/gpu_crossover.rs), the measurement behind which one a shape gets. Writes the tables
# under ${OUT:-gpu_report}/.
#
#   scripts/gpu_report.sh                 # builds the release binary first
#   DOWNHILL=/path/to/downhill CROSSOVER=/path/to/gpu_crossover scripts/gpu_report.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu_report}
mkdir -p "$out"
bin=${DOWNHILL:-}
crossover=${CROSSOVER:-}
if [ -z "$bin" ]; then
    cargo build --release --example gpu_crossover --bin downhill
    bin=target/release/downhill
    crossover=target/release/examples/gpu_crossover
fi
"$bin" info | tee "$out/info.txt"
run() {
    local name=$1
    shift
    echo "== $name"
    "$bin" bench --device gpu --wide "$@" | tee "$out/$name.txt"
}
run lesson --layers 2,2,1 --points 1e7,1e8 --steps 10 --repeats 5 --reference-max-points 0
run wide --layers 8,64,64,1 --points 1e6,1e7 --steps 5 --repeats 3 --reference-max-points 0
run widest --layers 16,256,256,1 --points 1e6 --steps 3 --repeats 3 --reference-max-points 0
if [ -n "$crossover" ]; then
    echo "== kernel families"
    "$crossover" 1000000 5 | tee "$out/crossover.txt"
fi
echo "== tables in $out/"
