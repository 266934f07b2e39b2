#!/usr/bin/env bash
# The project's test command: starts the test servers (scripts/test-services.sh), runs the whole
# workspace's tests against them, stops them again whatever happens.
#
#   scripts/test.sh [ARGS...]    ARGS go to `cargo nextest run` (or `cargo test` without nextest)
#
# Doctests run too (`cargo test --workspace --doc`, since nextest skips them); set
# LAKECDP_SKIP_DOCTESTS=1 to leave them out. The exit code is non-zero if either run failed.
set -euo pipefail

t_start=$EPOCHREALTIME
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# shellcheck source=scripts/test-services.sh
source scripts/test-services.sh

_test_sh_done=
# shellcheck disable=SC2317 # called through the trap
_test_sh_cleanup() {
  local rc=$?
  [[ -n $_test_sh_done ]] && return
  _test_sh_done=1
  trap - INT TERM
  lakecdp_services_stop || true
  local t=${EPOCHREALTIME/[.,]/} t0=${t_start/[.,]/}
  printf '[test.sh] total wall time %d.%01ds (exit %d)\n' $(((t - t0) / 1000000)) $(((t - t0) / 100000 % 10)) "$rc" >&2
}
trap _test_sh_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

lakecdp_services_start || exit 1

rc=0
# Doctests first (nextest skips them), so the closing summary is the main test run's.
if [[ -z ${LAKECDP_SKIP_DOCTESTS:-} ]]; then
  cargo test --workspace --doc || rc=$?
fi

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@" || { r=$?; ((rc != 0)) || rc=$r; }
else
  echo '[test.sh] cargo-nextest not found: using cargo test' >&2
  cargo test --workspace --no-fail-fast "$@" || { r=$?; ((rc != 0)) || rc=$r; }
fi

exit "$rc"
