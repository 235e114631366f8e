"""One module per DVC stage: each orchestrates domain modules and owns its stage's files."""
