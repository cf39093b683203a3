#!/usr/bin/env bash
# Builds every cargo-fuzz target in fuzz/ and runs each for SECONDS (default 600), one after
# another, at the lowest CPU priority. Prints executions, seconds and crashes per target; exits
# non-zero when any target found a crash, a hang (> 10 s for one input) or an out-of-memory.
# Not part of CI (too long): see docs/fuzzing.md.
#
#   scripts/fuzz.sh [SECONDS] [TARGET ...]
#
# Needs the stable toolchain only: cargo-fuzz's nightly flags are allowed by RUSTC_BOOTSTRAP=1.
# Seeds (committed) are in fuzz/seeds/<target>/; they are copied into the working corpus
# fuzz/corpus/<target>/ (gitignored), which grows from run to run. Crashing inputs land in
# fuzz/artifacts/<target>/, the libFuzzer log of each run in fuzz/artifacts/<target>.log.
#
# All targets are built once (`cargo fuzz build`), then each binary is run directly with the flags
# `cargo fuzz run` would pass (`cargo fuzz run` would rebuild first, against sources that may have
# changed since). FUZZ_SKIP_BUILD=1 runs the binaries already built.
set -euo pipefail

seconds="${1:-600}"
shift || true
cd "$(dirname "$0")/.."

export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/depproxy/fuzz-target}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    nice -n 19 cargo install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

if [ -z "${FUZZ_SKIP_BUILD:-}" ]; then
    nice -n 19 cargo fuzz build
fi
bin_dir="$CARGO_TARGET_DIR/$(rustc -vV | sed -n 's/^host: //p')/release"

summary=()
failed=0
for target in "${targets[@]}"; do
    corpus="fuzz/corpus/$target"
    artifacts="fuzz/artifacts/$target"
    log="fuzz/artifacts/$target.log"
    mkdir -p "$corpus" "$artifacts"
    if [ -d "fuzz/seeds/$target" ]; then
        cp -n "fuzz/seeds/$target"/* "$corpus"/ 2>/dev/null || true
    fi
    before=$(find "$artifacts" -type f | wc -l)
    echo "== $target: ${seconds}s" >&2
    start=$(date +%s)
    status=0
    nice -n 19 "$bin_dir/$target" -artifact_prefix="$artifacts/" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        "$corpus" >"$log" 2>&1 || status=$?
    elapsed=$(( $(date +%s) - start ))
    after=$(find "$artifacts" -type f | wc -l)
    crashes=$(( after - before ))
    if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        crashes=1 # the fuzzer failed without leaving an input (e.g. the build broke): still a failure
    fi
    executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    units=$(ls "$corpus" | wc -l)
    summary+=("$(printf '%-14s %14s %8s %8s %8s %8s' "$target" "${executions:-?}" "${rate:-?}" "$elapsed" "$units" "$crashes")")
    if [ "$crashes" -ne 0 ]; then
        failed=1
        echo "!! $target: exit $status, see $log and $artifacts/" >&2
        grep -aE '^(==[0-9]+==|thread .* panicked|SUMMARY|artifact_prefix|Test unit written)' "$log" | head -n 20 >&2 || true
    fi
done

printf '%-14s %14s %8s %8s %8s %8s\n' target executions exec/s seconds corpus crashes
printf '%s\n' "${summary[@]}"
exit "$failed"
