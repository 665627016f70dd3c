"""Error types that the CLI turns into one clear paragraph (never a traceback) and an exit code.

Every error carries a ``hint``: the concrete fix the user should try.
"""
from __future__ import annotations


class FusionkitError(Exception):
    """Base class: a message plus the fix. ``exit_code`` is what the CLI returns."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def render(self) -> str:
        return self.message if not self.hint else f"{self.message}\nFix: {self.hint}"

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.render()


class SpecError(FusionkitError):
    """A pipeline spec is malformed or names something that does not exist (exit code 2)."""

    exit_code = 2

    def __init__(self, problems: list["SpecProblem"], source: str | None = None):
        self.problems = problems
        self.source = source
        text = "\n\n".join(p.render() for p in problems)
        head = f"{len(problems)} problem(s) in spec {source or '<dict>'}:" if problems else "invalid spec"
        super().__init__(f"{head}\n\n{text}")

    def render(self) -> str:
        return self.message


class SpecProblem:
    """One located spec problem: where (file:line + dotted path), what, and the fix."""

    def __init__(self, path: str, message: str, hint: str | None = None, line: int | None = None,
                 file: str | None = None, override: str | None = None):
        self.path, self.message, self.hint, self.line, self.file = path, message, hint, line, file
        self.override = override  # the raw KEY=VALUE of the --set that caused it (``file`` is then its label)

    def render(self) -> str:
        where = f"{self.file or '<spec>'}:{self.line}" if self.line else (self.file or "<spec>")
        text = f"{where}  {self.path or '(top level)'}: {self.message}"
        return f"{text}\n  Fix: {self.hint}" if self.hint else text

    def __repr__(self) -> str:  # pragma: no cover
        return f"SpecProblem({self.render()!r})"


class InputError(FusionkitError):
    """Input images are missing, unreadable, corrupt or mutually inconsistent."""


class PluginError(FusionkitError):
    """A plugin failed to load, collides with another, or misbehaved at run time."""


class RunError(FusionkitError):
    """The run itself failed (NaN loss, out of memory, unwritable output, ...)."""


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by SIGINT or SIGTERM once it had something worth keeping.

    ``run_dir`` is the published run folder: with ``complete`` False it holds the last good iterate and its
    manifest says ``"status": "interrupted"`` (``reason``: "interrupted at iteration 137 of 1000"); with
    ``complete`` True the signal came while a finished run was being written, and the folder is complete. It is a
    ``KeyboardInterrupt``, so a loop of runs stops as the user asked; ``result`` is the :class:`RunResult`.
    """

    def __init__(self, reason: str, run_dir=None, result=None, complete: bool = False):
        super().__init__(reason)
        self.reason, self.run_dir, self.result, self.complete = reason, run_dir, result, complete
