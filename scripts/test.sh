#!/usr/bin/env bash
# The whole otelconc test suite, from a fresh clone on a fresh machine:
# installs what the tests need (the rotel OTLP collector, pinned, into ./.venv),
# then runs every gate: fmt, clippy -D warnings, docs -D warnings, all tests
# (unit, integration, doctests, end-to-end against the real collector), examples.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# Every runner's output is kept here too, to count what ran for the closing line.
runs="$(mktemp)"
trap 'rm -f "$runs"' EXIT

step "installing the test collector (rotel) if missing"
OTELCONC_ROTEL="$(scripts/install-rotel.sh)"
export OTELCONC_ROTEL
echo "rotel: $OTELCONC_ROTEL"

step "installing redis-server (the otelconc-redis tests start their own) if missing"
if ! command -v redis-server >/dev/null 2>&1; then
  # apt needs root: through sudo (non-interactive, fails rather than asks) when not root.
  as_root=()
  if [ "$(id -u)" -ne 0 ]; then as_root=(sudo -n); fi
  "${as_root[@]}" apt-get update
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server
fi
echo "redis-server: $(command -v redis-server)"

# Rust components the gates need; rustup is how this toolchain was installed.
if command -v rustup >/dev/null 2>&1; then
  rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy (all features, then the library with none) -D warnings"
cargo clippy --workspace --all-targets --all-features -- -D warnings
cargo clippy -p otelconc --all-targets -- -D warnings

step "cargo doc -D warnings"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features
# The binary (doc = false: its output path is the library's), checked after the rest.
cargo rustdoc -p otelconc-cli --bin otelconc --all-features -- -D warnings

step "tests (every crate, all features)"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --all-features --no-fail-fast 2>&1 | tee -a "$runs"
else
  cargo test --workspace --all-features --no-fail-fast 2>&1 | tee -a "$runs"
fi

# The test kit's handles bind their instruments (as a program using otelconc-setup does);
# this run makes them unbound, so every library test also covers the path a program
# that installs its own SDK gets by default.
step "tests of the library without optional features, on unbound instruments"
OTELCONC_TEST_UNBOUND=1 cargo test -p otelconc --tests --no-fail-fast 2>&1 | tee -a "$runs"

step "doctests"
cargo test --workspace --all-features --doc 2>&1 | tee -a "$runs"

step "examples run"
for ex in $(cd crates/otelconc/examples 2>/dev/null && ls *.rs 2>/dev/null | sed 's/\.rs$//'); do
  echo "-- example $ex"
  cargo run -q -p otelconc --all-features --example "$ex" >/dev/null
done

# Count what the runners reported: nextest's summary lines and libtest's result lines.
passed=$(awk '
  /tests run: [0-9]+ passed/ { for (i = 1; i <= NF; i++) if ($i == "passed," || $i == "passed") { n += $(i-1) } }
  /^test result: ok\. [0-9]+ passed/ { n += $4 }
  END { print n + 0 }' "$runs")
echo
echo "all gates passed"
echo "tests: ${passed} passed, 0 failed"
