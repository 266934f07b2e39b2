#!/usr/bin/env bash
# Crash test: kills `lakecdp refresh` with SIGKILL at random moments and checks that the
# lake stays readable and that the next refresh is not held off by the dead one's lease.
#
#   scripts/kill-test.sh [N]       N iterations (default 10)
#
# Builds nothing: the binary is ${LAKECDP_BIN:-target/debug/lakecdp} (a relative path is
# taken from the repository root). The retail example is copied into a temporary folder;
# each iteration starts `lakecdp -C <copy> refresh --force` (with `--apply
# --create-container` until the environment exists), kills it after a random delay of
# 0-8 s (KILL_TEST_MAX_DELAY), and checks that
#   - every model.json under the lake parses (python3's json) and names only partition
#     files that exist and are not empty,
#   - the refresh was not refused by a lease (each iteration's refresh is the refresh
#     "right after" the previous kill),
# and once the loop is done, that a normal `refresh` succeeds at once (no lease wait)
# and leaves a consistent lake. With KILL_TEST_FOLLOW_UP=each that normal refresh runs
# after every kill too (a full refresh each time: much slower).
#
# Prints a summary (iterations, kills by the phase the output shows, lease take-overs,
# failures, time) and exits non-zero on any failure. KILL_TEST_KEEP=1 keeps the folder.
set -euo pipefail

n=${1:-10}
max_delay=${KILL_TEST_MAX_DELAY:-8}
follow_up=${KILL_TEST_FOLLOW_UP:-end}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${LAKECDP_BIN:-target/debug/lakecdp}
[[ $bin == /* ]] || bin=$repo/$bin
if [[ ! -x $bin ]]; then
  echo "kill-test: no lakecdp binary at $bin (build it, or set LAKECDP_BIN)" >&2
  exit 2
fi
command -v python3 >/dev/null || {
  echo "kill-test: python3 is needed to check model.json files" >&2
  exit 2
}

work=$(mktemp -d "${TMPDIR:-/tmp}/lakecdp-kill-test.XXXXXX")
cleanup() {
  if [[ -n ${KILL_TEST_KEEP:-} ]]; then
    echo "kill-test: kept $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
project=$work/retail
mkdir -p "$project"
cp -r "$repo/examples/retail/." "$project/"
rm -rf "$project/lake" "$project/.lakecdp"

# lakecdp in the copy, without the variables of the caller's shell that would point it
# elsewhere; exec, so that the pid of a `run_lakecdp ... &` is lakecdp's own
run_lakecdp() {
  exec env -u LAKECDP_PROJECT -u LAKECDP_CATALOG -u LAKECDP_PRINCIPAL NO_COLOR=1 \
    "$bin" -C "$project" "$@"
}

# Every model.json under the lake parses and names partition files that exist and are
# not empty; prints one line per problem.
check_lake() {
  python3 - "$project/lake" <<'PY'
import json, os, sys, urllib.parse, urllib.request
root = sys.argv[1]
problems = []
models = 0
for dirpath, dirnames, filenames in os.walk(root):
    dirnames[:] = [d for d in dirnames if d != "_lakecdp"]
    if "model.json" not in filenames:
        continue
    path = os.path.join(dirpath, "model.json")
    models += 1
    try:
        with open(path, "rb") as f:
            model = json.load(f)
    except Exception as e:  # noqa: BLE001 - any failure to parse is the finding
        problems.append(f"{path}: does not parse: {e}")
        continue
    for entity in model.get("entities", []):
        for part in entity.get("partitions", []):
            location = part.get("location", "")
            if location.startswith("file:"):
                file = urllib.request.url2pathname(urllib.parse.urlparse(location).path)
            else:
                file = os.path.join(dirpath, location)
            if not os.path.isfile(file):
                problems.append(f"{path}: {entity.get('name')} names a missing file {location}")
            elif os.path.getsize(file) == 0:
                problems.append(f"{path}: {entity.get('name')} names an empty file {location}")
for p in problems:
    print(p)
print(f"checked {models} model.json", file=sys.stderr)
PY
}

# The phase a refresh's output was in when it stopped: its last line that says one.
phase_of() {
  local log=$1 phase="before any output" line
  while IFS= read -r line; do
    case $line in
    creating\ environment* | *passed,*failed* | created\ environment* | applied\ *) phase="apply" ;;
    refreshing\ environment*) phase="lease taken" ;;
    "[refresh] "*)
      phase=${line#\[refresh\] }
      phase="ingest:${phase%%.*}"
      ;;
    "  published "*)
      phase=${line#  published }
      phase="after publishing ${phase%%/ *}"
      ;;
    unifying*) phase="unify" ;;
    "  activity "*) phase="activities" ;;
    "  measure "*) phase="measures" ;;
    "  segment "*) phase="segments" ;;
    refresh\ *:\ *) phase="finished" ;;
    esac
  done <"$log"
  printf '%s' "$phase"
}

declare -A kills_by_phase=()
failures=()
killed=0 finished=0 takeovers=0
created=
start=$SECONDS

follow_up_refresh() {
  local label=$1 log=$work/follow-up.log t0=$SECONDS rc=0
  local args=(refresh)
  [[ -n $created ]] || args+=(--apply --create-container)
  timeout 600 env -u LAKECDP_PROJECT -u LAKECDP_CATALOG -u LAKECDP_PRINCIPAL NO_COLOR=1 \
    "$bin" -C "$project" "${args[@]}" >"$log" 2>&1 || rc=$?
  if grep -q "took the refresh lease over" "$log"; then takeovers=$((takeovers + 1)); fi
  if ((rc != 0)); then
    failures+=("$label: the normal refresh failed (exit $rc): $(grep -m1 -E 'held by|error' "$log" || tail -n1 "$log")")
  elif grep -q "is held by" "$log"; then
    failures+=("$label: the normal refresh waited for a lease")
  else
    created=1
    echo "  $label: normal refresh succeeded in $((SECONDS - t0)) s"
  fi
  local problems
  problems=$(check_lake 2>/dev/null)
  [[ -z $problems ]] || failures+=("$label, after the normal refresh: $problems")
}

for ((i = 1; i <= n; i++)); do
  log=$work/refresh-$i.log
  args=(refresh --force)
  [[ -n $created ]] || args+=(--apply --create-container)
  delay=$(python3 -c "import random; print(f'{random.uniform(0, $max_delay):.2f}')")
  run_lakecdp "${args[@]}" >"$log" 2>&1 &
  pid=$!
  sleep "$delay"
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    rc=0
    wait "$pid" 2>/dev/null || rc=$?
    if ((rc == 137)); then
      what=killed
    else
      what="ended by itself (exit $rc)"
    fi
  else
    rc=0
    wait "$pid" 2>/dev/null || rc=$?
    what="ended by itself (exit $rc)"
  fi
  phase=$(phase_of "$log")
  if [[ $what == killed ]]; then
    killed=$((killed + 1))
    kills_by_phase[$phase]=$((${kills_by_phase[$phase]:-0} + 1))
  else
    finished=$((finished + 1))
  fi
  if grep -q "refreshing environment" "$log"; then created=1; fi
  if grep -q "took the refresh lease over" "$log"; then takeovers=$((takeovers + 1)); fi
  if grep -q "is held by" "$log"; then
    failures+=("iteration $i: the refresh was refused by a lease: $(grep -m1 'is held by' "$log")")
  fi
  if [[ $what != killed ]] && ((rc != 0)); then
    failures+=("iteration $i: the refresh failed by itself (exit $rc): $(tail -n1 "$log")")
  fi
  problems=$(check_lake 2>/dev/null)
  if [[ -n $problems ]]; then
    failures+=("iteration $i (killed during $phase): $problems")
  fi
  printf 'iteration %d/%d: %s after %ss during %s\n' "$i" "$n" "$what" "$delay" "$phase"
  if [[ -n $problems ]]; then echo "  the lake is inconsistent:"; echo "$problems" | sed 's/^/    /'; fi
  if [[ $follow_up == each ]]; then follow_up_refresh "iteration $i"; fi
done
if [[ $follow_up != each ]]; then follow_up_refresh "after the last kill"; fi

echo
echo "kill-test summary"
echo "  iterations:       $n"
echo "  killed:           $killed (ended before the kill: $finished)"
for phase in "${!kills_by_phase[@]}"; do
  printf '    during %-28s %d\n' "$phase:" "${kills_by_phase[$phase]}"
done | sort
echo "  lease take-overs: $takeovers"
echo "  failures:         ${#failures[@]}"
for f in "${failures[@]}"; do echo "    - $f"; done
echo "  time:             $((SECONDS - start)) s"
((${#failures[@]} == 0))
