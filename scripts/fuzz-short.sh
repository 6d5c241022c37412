#!/usr/bin/env bash
# A short run of every cargo-fuzz target (fuzz/fuzz_targets): the parsers
# that read what callers and WeChat send. Each starts from its committed
# corpus (fuzz/corpus/TARGET, read only here) and runs FUZZ_SECONDS (15 s);
# a crash, a panic, a leak or one input slower than 5 s fails the run and
# leaves the input in fuzz/artifacts. libFuzzer needs a nightly toolchain:
# where none is installed (none can be fetched here) the step says so and
# is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz: skipped, no nightly toolchain installed (cargo fuzz needs one)"
  exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz (crates.io)"
  cargo install --quiet --locked cargo-fuzz@0.13.2
fi

seconds="${FUZZ_SECONDS:-15}"
targets=$(cargo +nightly fuzz list)
cargo +nightly fuzz build 2>/dev/null || cargo +nightly fuzz build
for target in $targets; do
  scratch=$(mktemp -d)
  echo "fuzz: $target for ${seconds}s"
  cargo +nightly fuzz run "$target" "$scratch" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -max_len=65536 -timeout=5 -rss_limit_mb=2048 \
    -print_final_stats=0 2>"$scratch.log" || { tail -40 "$scratch.log"; exit 1; }
  grep -E '^Done [0-9]+ runs' "$scratch.log" | sed "s/^/fuzz: $target: /" || true
  rm -rf "$scratch" "$scratch.log"
done
echo "fuzz: $(echo "$targets" | wc -w) targets passed"
