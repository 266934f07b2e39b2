#!/usr/bin/env bash
# Long fuzzing runs of the property-based fuzz targets (the `fuzz` test files of the
# core, lake and engine crates): each target runs in batches of random cases until its
# time is up, and a summary table shows how many inputs each ran, for how long, and what
# failed. CI runs the same targets with a bounded number of cases.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]      (default 120)
#
# FUZZ_BATCH sets the cases per batch (default 2000); FUZZ_PROFILE=release builds the
# test binaries with optimisations (more inputs per second, a longer first build).
# A failing target prints proptest's smallest failing input; make it a named regression
# test in the target's file. Exits non-zero when any target failed.
set -euo pipefail

seconds=${1:-120}
batch=${FUZZ_BATCH:-2000}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lakecdp/target}"
profile=()
[[ ${FUZZ_PROFILE:-} == release ]] && profile=(--release)

# package:test-name, one per target
targets=(
  lakecdp-core:conditions_of_arbitrary_text_parse_or_fail_cleanly
  lakecdp-core:conditions_of_the_language_parse_or_fail_cleanly
  lakecdp-core:project_files_load_or_name_their_errors
  lakecdp-lake:any_bytes_read_as_a_model_or_a_named_error
  lakecdp-engine:csv_files_of_any_bytes_lose_no_row
  lakecdp-engine:json_lines_files_of_any_bytes_lose_no_row
)

declare -A binary
for package in $(printf '%s\n' "${targets[@]}" | cut -d: -f1 | sort -u); do
  out=$(cargo test "${profile[@]}" -p "$package" --test fuzz --no-run 2>&1) || {
    echo "$out" >&2
    exit 1
  }
  binary[$package]=$(echo "$out" | sed -n 's/.*Executable tests\/fuzz.rs (\(.*\))$/\1/p' | tail -1)
  [[ -x ${binary[$package]} ]] || {
    echo "[fuzz] no fuzz test binary found for $package" >&2
    exit 1
  }
done

failed=0
rows=()
for target in "${targets[@]}"; do
  package=${target%%:*}
  name=${target#*:}
  cases=0
  status=ok
  start=$EPOCHSECONDS
  while ((EPOCHSECONDS - start < seconds)); do
    if ! log=$(LAKECDP_FUZZ_CASES=$batch "${binary[$package]}" --exact "$name" --test-threads 1 2>&1); then
      echo "$log" | tail -40 >&2
      status=FAILED
      failed=1
      break
    fi
    cases=$((cases + batch))
  done
  elapsed=$((EPOCHSECONDS - start))
  rows+=("$(printf '%-16s %-55s %10d %6ds %s' "$package" "$name" "$cases" "$elapsed" "$status")")
  echo "[fuzz] $package $name: $cases inputs in ${elapsed}s, $status" >&2
done

printf '\n%-16s %-55s %10s %7s %s\n' crate target inputs time result
printf '%s\n' "${rows[@]}"
exit $failed
