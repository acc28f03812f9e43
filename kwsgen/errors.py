"""User-facing errors.

Every problem a user can cause (bad model, bad flag, missing tool) is a `KwsgenError`:
the CLI prints its message on one line and exits with `exit_code`. Anything else
escaping is a kwsgen bug.
"""

from __future__ import annotations

from dataclasses import dataclass


class KwsgenError(Exception):
    """A problem with the user's input or environment, reported without a traceback."""

    exit_code = 2

    def one_line(self) -> str:
        return " ".join(str(self).split())


@dataclass(frozen=True)
class Problem:
    """One reason an operator cannot be compiled."""

    op_index: int
    op_type: str
    reason: str

    def __str__(self) -> str:
        return f"operator {self.op_index} ({self.op_type}): {self.reason}"


class UnsupportedModelError(KwsgenError):
    """The model is a valid TFLite file that kwsgen cannot compile; lists every problem at once."""

    def __init__(self, problems: list[Problem] | list[str], header: str = "unsupported model"):
        self.problems = list(problems)
        super().__init__(f"{header}: " + "; ".join(str(p) for p in self.problems))


class ToolMissingError(KwsgenError):
    """An external tool (compiler, QEMU, PlatformIO) is not installed."""

    exit_code = 3
