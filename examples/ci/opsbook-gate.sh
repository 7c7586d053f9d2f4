#!/usr/bin/env bash
# A pull-request gate for a folder of runbooks: nothing is contacted, no terminal needed.
#   examples/ci/opsbook-gate.sh [RUNBOOKS] [INVENTORY] [OUT]
# 1. check --strict: the language, the policy (.opsbook.yaml), and warnings fail; JUnit for
#    the CI's test report;
# 2. plan every runbook (with the parameters file), so a template that only renders at
#    plan time fails here;
# 3. on a pull request (BASE_REF set, e.g. origin/main), the plan diff of every changed
#    runbook as Markdown, for a PR comment.
set -euo pipefail
runbooks=${1:-runbooks}
inventory=${2:-inventories/example.ini}
out=${3:-opsbook-ci}
params=${OPSBOOK_PARAMS_FILE:-examples/ci/params.yaml}
mkdir -p "$out"

status=0
opsbook check --strict "$runbooks" -i "$inventory" --junit "$out/check.xml" || status=1
opsbook plan "$runbooks" -i "$inventory" --params-file "$params" --format json > "$out/plans.json" || status=1

if [ -n "${BASE_REF:-}" ]; then
  : > "$out/plan-diff.md"
  # (`|| true`: a pull request that changes no runbook is no failure of the gate)
  changed=$(git diff --name-only --diff-filter=AM "$BASE_REF" -- "$runbooks" | grep -E '\.ya?ml$' || true)
  for file in $changed; do
    if git cat-file -e "$BASE_REF:$file" 2>/dev/null; then
      opsbook diff "$BASE_REF:$file" "$file" -i "$inventory" --params-file "$params" --format md >> "$out/plan-diff.md" \
        || status=1
    else
      printf '### %s\n\nA new runbook: no earlier version to compare (its plan is in plans.json).\n\n' "$file" \
        >> "$out/plan-diff.md"
    fi
  done
fi
exit $status
