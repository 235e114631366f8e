"""Errors a user can fix, shared by the domain modules and the stages."""


class StageError(RuntimeError):
    """A stage refuses to produce outputs; the message says what is wrong and how to fix it."""
