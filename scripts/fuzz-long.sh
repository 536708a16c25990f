#!/usr/bin/env bash
# The long fuzzing runs recorded in docs/FUZZING.md: RUNS executions (default 10 million) of each
# target (or the named ones), one after another, built without AddressSanitizer and without
# compare tracing for speed (the test command's short runs keep both). Run scripts/fuzz.sh once
# first: it seeds fuzz/corpus. Each target's libFuzzer log goes to fuzz/logs/TARGET.log.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-10000000}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(saved_plan fast_parser_agrees webhook_signature kdl_front_end)
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/platformd-target}"
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    toolchain=(+nightly)
else
    toolchain=()
    export RUSTC_BOOTSTRAP=1
fi
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
fuzz_dir="$CARGO_TARGET_DIR/fuzz-long"
mkdir -p fuzz/logs
for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target"
    echo "==> $target: $runs executions"
    start=$(date +%s)
    if ! cargo "${toolchain[@]}" fuzz run --fuzz-dir fuzz --target-dir "$fuzz_dir" \
        --sanitizer none --no-trace-compares "$target" "fuzz/corpus/$target" -- \
        -runs="$runs" -print_final_stats=1 >"fuzz/logs/$target.log" 2>&1; then
        tail -n 60 "fuzz/logs/$target.log"
        echo "fuzz target $target failed; the input is in fuzz/artifacts/$target" >&2
        exit 1
    fi
    echo "$target: $(( $(date +%s) - start )) s"
    grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb)' "fuzz/logs/$target.log"
done
