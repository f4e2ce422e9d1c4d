#!/usr/bin/env bash
# tests/fuzz/campaign.sh - run one libFuzzer target until it has used CPU_SECONDS of CPU time.
#
# `make fuzz` runs each target for a wall-clock time; on a shared machine at nice 19 that says
# little about how much fuzzing happened.  This runs the target in chunks of CHUNK seconds (wall)
# with the same corpora, dictionaries and flags as `make fuzz`, adds up the CPU time (user + sys)
# each chunk really got, and stops once the total reaches CPU_SECONDS or a chunk fails (a finding:
# libFuzzer exits non-zero and leaves the input in build/fuzz/crashes/<target>/).
# Needs `make fuzz-build` and the generated seeds (`make fuzz FUZZ_SECONDS=1` makes both).
# Prints one summary line per chunk to build/fuzz/<target>.campaign and a final line:
#   <target> cpu=<s> wall=<s> execs=<n> cov=<edges> ft=<features> corpus=<n> status=<ok|finding>
#
# Usage: tests/fuzz/campaign.sh TARGET [CPU_SECONDS=1800] [CHUNK=300]
set -u
t=$1
want=${2:-1800}
chunk=${3:-300}
# SCHED_IDLE (chrt -i), not only nice 19: on this kernel (6.18, EEVDF) nice-19 fuzzers on every CPU
# made a nice-0 process's fdatasync take 3.4 ms instead of 0.27 ms (the wake-up after the I/O
# waited behind them); SCHED_IDLE tasks give way at once.
# libFuzzer's per-input timeout is wall-clock: at nice 19 beside nice-0 work an input of 0.1 s CPU
# was once starved past 10 s (a false "timeout" that ended a campaign), so 60 s by default.
tmo=${FUZZ_TIMEOUT:-60}
out=build/fuzz
mkdir -p "$out/corpus/$t" "$out/crashes/$t" "$out/seeds/$t" "tests/fuzz/seeds/$t"
dict=
[ -f "tests/fuzz/$t.dict" ] && dict="-dict=tests/fuzz/$t.dict"
args=
[ -f "tests/fuzz/$t.args" ] && args=$(cat "tests/fuzz/$t.args")
cpu=0 wall=0 execs=0 status=ok
: > "$out/$t.campaign"
while [ "$cpu" -lt "$want" ]; do
    start=$(date +%s)
    TIMEFORMAT='%U %S'
    # bash's `time` reports the CPU time of the fuzzer process (all its threads).
    tm=$( { time ASAN_OPTIONS=detect_leaks=1 chrt -i 0 nice -n 19 "bin/fuzz/fuzz_$t" -max_total_time="$chunk" \
        -timeout="$tmo" -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$out/crashes/$t/" \
        $dict $args "$out/corpus/$t" "$out/seeds/$t" "tests/fuzz/seeds/$t" \
        > "$out/$t.log" 2>&1; echo "rc=$?" > "$out/$t.rc"; } 2>&1 )
    rc=$(sed 's/rc=//' "$out/$t.rc")
    used=$(echo "$tm" | awk '{printf "%d", $1 + $2}')
    cpu=$((cpu + used))
    wall=$((wall + $(date +%s) - start))
    n=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$out/$t.log" | awk '{print $2}')
    execs=$((execs + ${n:-0}))
    last=$(grep -E '^#[0-9]+' "$out/$t.log" | tail -1)
    echo "chunk rc=$rc cpu=$used execs=${n:-0} $last" >> "$out/$t.campaign"
    if [ "$rc" != 0 ]; then status=finding; break; fi
done
cov=$(echo "$last" | grep -o 'cov: [0-9]*' | awk '{print $2}')
ft=$(echo "$last" | grep -o 'ft: [0-9]*' | awk '{print $2}')
corp=$(ls "$out/corpus/$t" | wc -l)
echo "$t cpu=$cpu wall=$wall execs=$execs cov=${cov:-?} ft=${ft:-?} corpus=$corp status=$status" | tee -a "$out/$t.campaign"
[ "$status" = ok ]
