#!/usr/bin/env bash
# The README's walkthrough: the Koalla Clothing point economy, set up from the terminal on the
# embedded SQLite default (pointctl.db in the current directory). It runs in its own folder
# (default ./walkthrough, or $WALKTHROUGH_DIR) and starts from an empty database there, so it
# can be run again at any time without touching another pointctl.db.
set -euo pipefail
dir="${WALKTHROUGH_DIR:-walkthrough}"
here="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$dir" && cd "$dir" && rm -f pointctl.db pointctl.db-wal pointctl.db-shm
# the program and three weeks of its activity (make_koalla_activity.py writes the latter)
cp "$here/koalla.toml" "$here/koalla_activity.jsonl" .
# each command is shown as typed ("$ pointctl ..."), then what it prints
trap 'printf "\n$ %s\n" "$BASH_COMMAND"' DEBUG
# --- walkthrough (the README shows these lines; a test keeps both the same) ---
# a simulated clock: the program opens on 1 September 2026, 09:00 in New York
export POINTCTL_NOW=2026-09-01T09:00:00-04:00
pointctl db upgrade
pointctl config apply koalla.toml --dry-run
pointctl config apply koalla.toml
pointctl config apply koalla.toml
pointctl accounts list
pointctl sources list
pointctl restrictions list "Ride Share Partner"
pointctl tiers set --account "Tier Qualifying" --level Silver=500 --level Gold=1000 --window calendar-year --keep 12mo
# three weeks later: the activity of 1-21 September, then a few single commands
export POINTCTL_NOW=2026-09-21T20:00:00-04:00
pointctl batch koalla_activity.jsonl
pointctl balance cust-1042
pointctl spend cust-1042 300 --reference-id checkout-9 --idempotency-key checkout-9
pointctl spend cust-1042 300 --reference-id checkout-9 --idempotency-key checkout-9
pointctl reverse --reference-id checkout-9 --points 50
pointctl issue cust-1042 100 --source "Ride Share Partner" --reference-id ride-99
# a bonus campaign meets the partner's daily budget: --clamp issues what is left of it
pointctl issue cust-2001 50000 --source "Ride Share Partner" --clamp --reference-id bonus-1
pointctl expire status
pointctl expire preview --within 31d --user cust-1042
# a month on: the 30-day return window has passed for every September purchase
export POINTCTL_NOW=2026-10-22T06:00:00-04:00
pointctl expire run
pointctl balance cust-1042
pointctl tier cust-1042
pointctl report tiers
# the support desk: one customer at a glance, and balances as they were, read-only
pointctl --read-only customer cust-1042 --entries 5
pointctl --read-only history cust-1042 --at 2026-09-10T12:00
pointctl report audit --user cust-1042 --limit 8
pointctl report audit --search ride --type issue --limit 3
pointctl report liability --last-month
pointctl report debt
pointctl report liability --daily --from 2026-09-19 --to 2026-09-21 --source "Ride Share Partner"
pointctl report sources --last-month --no-chart --export koalla-september.csv
pointctl report sources --from 2026-09-15 --to 2026-09-21 --source "Koalla Credit Card"
pointctl verify
