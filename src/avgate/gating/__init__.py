"""Pre-registered gates: the spec, the append-only test-split ledger, verdicts and promotion."""
