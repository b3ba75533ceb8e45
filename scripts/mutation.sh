#!/usr/bin/env bash
# Mutation testing of the safety rules (mutmut): a surviving mutant is a missing test.
#
#   scripts/mutation.sh            # mutate, test, print the survivors (a few minutes)
#
# Runs in a throw-away copy of the committed tree (mutmut writes mutants/ beside the code), with
# the instant rule tests only: eviction and retention planning, the store's delete guard and
# receipts, verify's log, receipt, eviction and layout rules, gestures and trigger rules,
# battery and storage policies (each rule module has a *_rules or *_edges file that pins its
# thresholds, refusals and the verifier's words). Not part of the default test run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
[[ -x .venv/bin/mutmut ]] || .venv/bin/python -m pip install -q mutmut
WORK=$(mktemp -d /tmp/bodycam-mutation.XXXXXX)
trap 'git -C "$ROOT" worktree remove --force "$WORK" >/dev/null 2>&1 || rm -rf "$WORK"' EXIT
git worktree add --detach --force "$WORK" HEAD >/dev/null
cd "$WORK"
cat >> pyproject.toml <<'TOML'

[tool.mutmut]
source_paths = ["agent/power/policy.py", "agent/storage/eviction.py", "agent/storage/policy.py",
                "agent/gestures.py", "agent/triggers.py", "agent/evidence/logcheck.py",
                "agent/evidence/receipt.py", "agent/evidence/layout.py"]
pytest_add_cli_args_test_selection = [
    "tests/power/test_battery_policy.py", "tests/power/test_battery_edges.py",
    "tests/storage/test_eviction.py", "tests/storage/test_storage_policy.py",
    "tests/storage/test_policy_edges.py", "tests/recording/test_gesture_rules.py",
    "tests/recording/test_gesture_edges.py", "tests/triggers/test_trigger_rules.py",
    "tests/triggers/test_trigger_edges.py", "tests/evidence/test_verify_attacks.py",
    "tests/evidence/test_receipts_store.py", "tests/evidence/test_tamper.py",
    "tests/evidence/test_store.py", "tests/evidence/test_logcheck_rules.py",
    "tests/evidence/test_receipt_rules.py", "tests/evidence/test_layout_rules.py"]
also_copy = ["agent", "hw", "config", "tests"]
TOML
# its own session: mutmut signals its whole process group when it finishes
setsid "$ROOT/.venv/bin/mutmut" run > mutmut-run.log 2>&1 || { tail -30 mutmut-run.log; exit 1; }
"$ROOT/.venv/bin/mutmut" results 2>/dev/null | tee "$ROOT/mutation-survivors.txt"
echo "survivors: $(grep -c ': survived' "$ROOT/mutation-survivors.txt" || true) (list in mutation-survivors.txt)"
