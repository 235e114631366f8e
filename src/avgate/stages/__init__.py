"""One module per DVC stage: each orchestrates domain modules and owns its stage's files."""


class StageError(RuntimeError):
    """A stage refuses to produce outputs; the message says what is wrong and how to fix it."""
