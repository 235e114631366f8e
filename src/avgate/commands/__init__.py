"""Commands people type that are not DVC stages: `avgate report`, `avgate verify` and
`avgate plan check`."""
