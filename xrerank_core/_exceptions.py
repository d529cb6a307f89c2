"""Exceptions raised by xrerank.

Every error xrerank raises on purpose derives from :class:`XRerankError`, so one
``except XRerankError`` catches them all. Where a builtin fits, the class also
derives from it, so code that already catches ``ValueError`` / ``TypeError`` /
``ImportError`` keeps working::

    XRerankError
    ├── ConfigError (ValueError)           a bad option: top_n < 1, batch_size < 1, ...
    ├── InputError (ValueError)            a bad query or document
    │   └── InputTypeError (TypeError)     not a string where a string is needed
    ├── ModelLoadError (OSError)           the model could not be loaded
    │   ├── ModelNotFoundError             no such folder, or the hub cannot be reached
    │   ├── NotACrossEncoderError          the folder holds something else
    │   └── RemoteCodeRequiredError        needs trust_remote_code=True
    ├── ScoringError (RuntimeError)        the model produced NaN / inf, or a backend failed
    │   └── HTTPBackendError               a remote rerank server was unreachable or answered badly
    └── MissingDependencyError (ImportError)  an optional package is not installed

Messages say what was wrong and what to do about it.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "HTTPBackendError",
    "InputError",
    "InputTypeError",
    "MissingDependencyError",
    "ModelLoadError",
    "ModelNotFoundError",
    "NotACrossEncoderError",
    "RemoteCodeRequiredError",
    "ScoringError",
    "XRerankError",
]


class XRerankError(Exception):
    """Base class of every error xrerank raises on purpose."""


class ConfigError(XRerankError, ValueError):
    """An option has a value that cannot work (``top_n=0``, ``batch_size=-1``, ...)."""


class InputError(XRerankError, ValueError):
    """A query or document cannot be reranked (an empty query, ...)."""


class InputTypeError(InputError, TypeError):
    """A query or document is not a string."""


class ModelLoadError(XRerankError, OSError):
    """The model could not be loaded."""


class ModelNotFoundError(ModelLoadError):
    """No model under that name: a missing folder, or a hub id the hub cannot serve."""


class NotACrossEncoderError(ModelLoadError):
    """The folder holds a model, but not a cross-encoder (sequence classifier)."""


class RemoteCodeRequiredError(ModelLoadError):
    """The model ships its own Python code; loading it needs ``trust_remote_code=True``."""


class ScoringError(XRerankError, RuntimeError):
    """Scoring failed: the model returned NaN or infinite scores, or a backend failed."""


class HTTPBackendError(ScoringError):
    """The http backend's server could not be reached, or answered with an error or a bad answer.

    Attributes:
        status_code: The HTTP status of the answer, or ``None`` when there was none.
    """

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class MissingDependencyError(XRerankError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""


def missing_dependency(package: str, extra: str | None, exc: ImportError) -> MissingDependencyError:
    """Build the error for a missing package, naming the extra that installs it.

    Args:
        package: The distribution that failed to import.
        extra: The ``xrerank`` extra that provides it, or ``None`` for a core dependency.
        exc: The original import error (chain it with ``raise ... from exc``).

    Returns:
        The error to raise.
    """
    target = f'"xrerank[{extra}]"' if extra else f"--force-reinstall xrerank  (or: pip install {package})"
    msg = f"{package} is not installed; install it with: pip install {target} ({exc})"
    return MissingDependencyError(msg)
