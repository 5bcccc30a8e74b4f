#!/usr/bin/env bash
# The README's walkthrough: the Koalla Clothing point economy, set up from the terminal on the
# embedded SQLite default (pointctl.db in the current directory). It runs in its own folder
# (default ./walkthrough, or $WALKTHROUGH_DIR) and starts from an empty database there, so it
# can be run again at any time without touching another pointctl.db.
set -euo pipefail
dir="${WALKTHROUGH_DIR:-walkthrough}"
mkdir -p "$dir" && cd "$dir" && rm -f pointctl.db pointctl.db-wal pointctl.db-shm
set -x
# --- walkthrough (the README shows these lines; a test keeps both the same) ---
pointctl db upgrade
pointctl accounts create "Spendable - Core" --group "Spendable Point Balance" --default
pointctl accounts create "Spendable - Partner" --group "Spendable Point Balance" --max-balance 250000
pointctl accounts create "Tier Qualifying" --qualifying --no-negative
pointctl accounts create "Purchase Escrow" --group "Pending" --no-negative
pointctl sources create "Base Purchases" --link "Spendable - Core" --link "Purchase Escrow"
pointctl sources create "Bonus Purchases" --link "Spendable - Core"
pointctl sources create "Koalla Credit Card" --link "Spendable - Core"
pointctl sources create "Ride Share Partner" --inventory 50000 --link "Spendable - Partner"
pointctl sources create "Tier Qualifying Points" --link "Tier Qualifying"
pointctl sources inventory "Ride Share Partner" --adjust +10000 --reason "Q4 budget top-up"
pointctl restrictions add "Ride Share Partner" --max-points 100 --per 1d --per-customer
pointctl restrictions add "Ride Share Partner" --max-points 50000 --per 1d
pointctl config set timezone America/New_York
pointctl accounts expiration "Purchase Escrow" --rolling --older-than 30d --rollover-to "Spendable - Core"
pointctl accounts list
pointctl sources list
pointctl sources show "ride share partner"
pointctl sources list --status active --format json
pointctl accounts list --search spendable --format csv
pointctl issue cust-1042 500 --source "Base Purchases" --account "Spendable - Core" --reference-id order-1 --reference-type Purchase
pointctl issue cust-1042 120 --source "Koalla Credit Card" --reference-id card-2
pointctl spend cust-1042 300 --reference-id checkout-9 --idempotency-key checkout-9
pointctl spend cust-1042 300 --reference-id checkout-9 --idempotency-key checkout-9
pointctl reverse --reference-id checkout-9 --points 50
pointctl issue cust-1042 80 --source "Ride Share Partner" --reference-id ride-1
pointctl issue cust-1042 50 --source "Ride Share Partner" --reference-id ride-2 --clamp
pointctl restrictions list "Ride Share Partner" --user cust-1042
pointctl issue cust-1042 200 --source "Base Purchases" --account "Purchase Escrow" --reference-id order-3
pointctl expire status
pointctl expire preview --within 31d --user cust-1042
pointctl expire run
pointctl balance cust-1042
pointctl report audit --user cust-1042
pointctl report audit --search CUST-1042 --type issue --limit 2
pointctl report liability --this-month
pointctl report liability --daily --last 7d --source "Base Purchases"
pointctl report sources --last 7d --source "Ride Share Partner" --export ride-share.csv
pointctl verify
