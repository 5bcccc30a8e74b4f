"""Writes sample_configs/koalla_activity.jsonl: three weeks (2026-09-01 .. 09-21, New York
time) of Koalla Clothing activity for `pointctl batch`, the same every time (seeded).

    python sample_configs/make_koalla_activity.py

Purchases earn 1 point per dollar into Purchase Escrow (the 30-day return window) and as many
tier qualifying points; paid with the Koalla credit card they earn an additional 2 points per
dollar, spendable at once; the ride share partner gives 100 points per ride (some members
ride twice a day); members spend only what they have, so every operation applies.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

CUSTOMERS = [f"cust-{n}" for n in range(1000, 1020)] + ["cust-1042"]


def operations() -> list[dict[str, object]]:
    rng = random.Random(2026)
    spendable = dict.fromkeys(CUSTOMERS, 0)  # Spendable - Core, what spends draw from
    ops: list[dict[str, object]] = []
    serial = 0

    def add(op: dict[str, object], day: int, minute: int) -> None:
        nonlocal serial
        serial += 1
        op["at"] = f"2026-09-{day:02d}T{9 + minute // 60:02d}:{minute % 60:02d}:00-04:00"
        op.setdefault("idempotency_key", f"walkthrough-{serial}")
        ops.append(op)

    for day in range(1, 22):
        minutes = sorted(rng.sample(range(0, 600), 16))
        riders = rng.sample(CUSTOMERS, 3)
        riders.append(riders[0])  # a member who rides twice that day
        for n, minute in enumerate(minutes):
            user = "cust-1042" if day == 1 and n < 2 else rng.choice(CUSTOMERS)
            kind = ("card" if n == 1 else "purchase") if day == 1 and n < 2 else \
                rng.choice(["purchase", "purchase", "card", "card", "ride", "spend",
                            "bonus", "login"])
            if kind in ("purchase", "card"):
                dollars = (300 if user == "cust-1042" else rng.randrange(10, 151)) \
                    if kind == "card" else rng.randrange(20, 201)
                order = f"order-{day:02d}{n:02d}"
                add({"op": "issue", "user": user, "points": dollars, "source": "Base Purchases",
                     "account": "Purchase Escrow", "reference_id": order,
                     "reference_type": "Purchase"}, day, minute)
                add({"op": "issue", "user": user, "points": dollars,
                     "source": "Tier Qualifying Points", "reference_id": order,
                     "reference_type": "Purchase"}, day, minute)
                if kind == "card":  # the card's additional 2 points per dollar
                    add({"op": "issue", "user": user, "points": 2 * dollars,
                         "source": "Koalla Credit Card", "reference_id": f"card-{day:02d}{n:02d}",
                         "reference_type": "Card Purchase"}, day, minute)
                    spendable[user] += 2 * dollars
            elif kind == "ride" and riders:
                add({"op": "issue", "user": riders.pop(), "points": 100,
                     "source": "Ride Share Partner", "reference_id": f"ride-{day:02d}{n:02d}",
                     "reference_type": "Ride"}, day, minute)
            elif kind == "spend" and spendable[user] >= 50:
                points = rng.randrange(50, spendable[user] + 1, 10)
                add({"op": "spend", "user": user, "points": points,
                     "reference_id": f"checkout-{day:02d}{n:02d}"}, day, minute)
                spendable[user] -= points
            elif kind == "bonus":
                add({"op": "issue", "user": user, "points": 50, "source": "Bonus Purchases",
                     "account": "Spendable - Core", "reference_id": f"bonus-{day:02d}{n:02d}",
                     "reference_type": "Double Points Day"}, day, minute)
                spendable[user] += 50
            else:
                add({"op": "activity", "user": user, "event": "login"}, day, minute)
    return ops


def main() -> None:
    target = Path(__file__).with_name("koalla_activity.jsonl")
    target.write_text("".join(json.dumps(op) + "\n" for op in operations()))
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
