#!/usr/bin/env bash
# Runs libFuzzer targets one after another: fuzz/run.sh OUT SECONDS NAME:MAXLEN...
#
# Each target OUT/bin/fuzz_NAME runs for SECONDS on OUT/corpus/NAME, a copy
# of fuzz/corpus/NAME that grows with the new inputs it finds (the repo's
# seed corpus is never written), with crash artifacts in OUT/artifacts and
# its log in OUT/logs/NAME.log. Prints per target the run time, executions,
# executions per second and whether it crashed; exits 1 when any did.
# FUZZ_FLAGS adds libFuzzer flags, e.g. FUZZ_FLAGS="-fork=1 -ignore_crashes=1"
# to go on past a known crash (the counts then come from the progress lines).
set -u
out=$1 seconds=$2
shift 2
mkdir -p "$out/corpus" "$out/artifacts" "$out/logs"
crashed=0
for spec in "$@"; do
    name=${spec%%:*} maxlen=${spec#*:}
    corpus=$out/corpus/$name log=$out/logs/$name.log
    mkdir -p "$corpus"
    cp -n fuzz/corpus/"$name"/* "$corpus"/ 2>/dev/null
    before=$(ls "$out/artifacts" | grep -c "^$name-")
    start=$(date +%s)
    "$out/bin/fuzz_$name" -max_total_time="$seconds" -max_len="$maxlen" \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$out/artifacts/$name-" ${FUZZ_FLAGS:-} "$corpus" >"$log" 2>&1
    rc=$?
    secs=$(( $(date +%s) - start ))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    if [ -z "$execs" ]; then      # fork mode: the last progress line
        execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
    fi
    if [ -n "$execs" ] && [ "$secs" -gt 0 ] && [ "${rate:-0}" = 0 ]; then
        rate=$(( execs / secs ))
    fi
    new=$(( $(ls "$out/artifacts" | grep -c "^$name-") - before ))
    if [ "$rc" -eq 0 ] && [ "$new" -eq 0 ]; then
        verdict="no crash"
    else
        crashed=1
        art=$(grep -o "Test unit written to [^ ]*" "$log" | head -1 | sed 's/Test unit written to //')
        verdict="CRASH (exit $rc, $new new artifacts) ${art:-see $log}"
    fi
    printf 'fuzz %-8s %4ss  %10s execs  %7s execs/s  %-9s  corpus %s files  %s\n' \
        "$name" "$secs" "${execs:-?}" "${rate:-?}" "$cov" "$(ls "$corpus" | wc -l)" "$verdict"
done
exit $crashed
