#!/usr/bin/env bash
# One fuzzing campaign: runs each named target for SECONDS of wall time, one at a time (the
# machine's cores are shared), with a per-input timeout and memory limits, on a working corpus
# seeded from the committed one. Appends one line per target to $OUT/table.tsv:
#   target  seconds  executions  exec/s  coverage(edges)  features  corpus  findings
# and leaves each run's log and any crash in $OUT/<target>/.
#
#   fuzz/campaign.sh OUT SECONDS target...
#
# CLOSE_FD_MASK=1 keeps the target's stderr in the log (a panic's message with the finding);
# the default 3 closes it too, for targets whose code under test writes to stderr.
set -euo pipefail
out=$1; secs=$2; shift 2
here=$(cd "$(dirname "$0")" && pwd)
bin="$here/target/x86_64-unknown-linux-gnu/release"
mkdir -p "$out"
[ -f "$out/table.tsv" ] || printf 'target\tseconds\texecutions\texec_per_s\tcov\tft\tcorpus\tfindings\n' > "$out/table.tsv"
for t in "$@"; do
  d="$out/$t"; mkdir -p "$d/corpus" "$d/artifacts"
  cp -n "$here/corpus/$t"/* "$d/corpus/" 2>/dev/null || true
  start=$(date +%s)
  # -timeout: an input may not take 5 s (wall time: on a loaded machine 1 s gave false alarms); -rss/-malloc: no host growth without bound.
  "$bin/$t" "$d/corpus" -max_total_time="$secs" -timeout=5 -rss_limit_mb=1024 \
    -malloc_limit_mb=256 -print_final_stats=1 -artifact_prefix="$d/artifacts/" \
    -close_fd_mask="${CLOSE_FD_MASK:-3}" > "$d/log" 2>&1 || true
  took=$(( $(date +%s) - start ))
  last=$(grep -E '^#[0-9]+' "$d/log" | tail -1)
  execs=$(grep -oP 'stat::number_of_executed_units:\s*\K[0-9]+' "$d/log" || echo 0)
  cov=$(echo "$last" | grep -oP 'cov: \K[0-9]+' || echo 0)
  ft=$(echo "$last" | grep -oP 'ft: \K[0-9]+' || echo 0)
  corp=$(echo "$last" | grep -oP 'corp: \K[0-9]+' || echo 0)
  finds=$(ls "$d/artifacts" | wc -l)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$took" "$execs" "$(( execs / (took > 0 ? took : 1) ))" \
    "$cov" "$ft" "$corp" "$finds" >> "$out/table.tsv"
done
