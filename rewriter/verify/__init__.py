"""Checks of the result: our validator and schema check (to plan), and parity in the real target runtime (the judge)."""
