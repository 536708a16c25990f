#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz, libFuzzer) of every target in fuzz/, each for a bounded
# time: `scripts/fuzz.sh 20` is the short run of the test command; `scripts/fuzz.sh 3600` a long
# run (docs/FUZZING.md). Seed corpora come from the test fixtures and the example stack; what a
# run finds stays in fuzz/corpus (ignored by git) and crashes in fuzz/artifacts.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(kdl_front_end fast_parser_agrees saved_plan webhook_signature api_request)
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/platformd-target}"
# libFuzzer needs nightly compiler flags: the nightly toolchain when installed, else stable with
# RUSTC_BOOTSTRAP (the same compiler features, unlocked).
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    toolchain=(+nightly)
else
    toolchain=()
    export RUSTC_BOOTSTRAP=1
fi
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz

# Seeds: every fixture and example file for the KDL targets, saved plans of the example and of
# the plan fixtures for the plan loader, a few shaped inputs for the webhook check and the API.
corpus=fuzz/corpus
mkdir -p "$corpus"/{kdl_front_end,fast_parser_agrees,saved_plan,webhook_signature,api_request}
while IFS= read -r -d '' f; do
    name="seed-$(sha256sum "$f" | cut -c1-16)"
    cp "$f" "$corpus/kdl_front_end/$name"
    cp "$f" "$corpus/fast_parser_agrees/$name"
done < <(find planner/tests/fixtures platform-state-example -name '*.kdl' -print0)
platformd="$CARGO_TARGET_DIR/debug/platformd"
[ -x "$platformd" ] || cargo build --quiet --bin platformd
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for stack in platform-state-example planner/tests/fixtures/plans/*/; do
    for format in json; do
        "$platformd" --state-dir "$scratch/state" plan "$stack" --format "$format" \
            > "$corpus/saved_plan/seed-$(basename "$stack").$format" 2>/dev/null || true
    done
done
printf '\x06s3cret\nsha256=00\n{}' > "$corpus/webhook_signature/seed-short"
printf '\x00sha256=\n' > "$corpus/webhook_signature/seed-empty"
printf 'rollback=git-3f9a1c2\n{"revision": "git-3f9a1c2"}' > "$corpus/api_request/seed-rollback"
printf 'correct=all&override-window=hotfix%%20INC-42\n{"revision": "r", "plan_hash": "9f2c"}' \
    > "$corpus/api_request/seed-sync"
printf '\n{"address": "ai-endpoint/support-bot"}' > "$corpus/api_request/seed-wake"

fuzz_dir="$CARGO_TARGET_DIR/fuzz"
for target in "${targets[@]}"; do
    echo "==> fuzzing $target for ${seconds}s"
    log="$scratch/$target.log"
    if ! cargo "${toolchain[@]}" fuzz run --fuzz-dir fuzz --target-dir "$fuzz_dir" "$target" \
        "$corpus/$target" -- -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
        tail -n 60 "$log"
        echo "fuzz target $target failed; the input is in fuzz/artifacts/$target" >&2
        exit 1
    fi
    grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || tail -n 5 "$log"
done
