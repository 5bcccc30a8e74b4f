"""Pure-Python rules of pointctl: errors, durations, clock and validation. No database here."""
