"""The one error of the filter language, shared by the tokenizer and the parser."""

from __future__ import annotations


class FilterError(ValueError):
    """A query the explorer cannot run: `message` is for the operator, `position` the
    0-based offset in the query where the problem starts (the page can point at it)."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.message = message
        self.position = position
