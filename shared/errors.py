"""Who is at fault for an error: the infrastructure (retry it), or the value (refuse it). Used by the
consumer runner (retry or dead-letter) and the HTTP layer (503 or 422)."""

from __future__ import annotations

from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

_TRANSIENT_SQLSTATES = {"40001", "40P01", "57P01", "57P03", "08000", "08003", "08006", "53300"}


def sqlstate(exc: BaseException) -> str | None:
    """The PostgreSQL SQLSTATE behind a (wrapped) driver error, if any."""
    orig = getattr(exc, "orig", None)
    state = getattr(orig, "sqlstate", None) or getattr(getattr(orig, "__cause__", None), "sqlstate", None)
    return state if isinstance(state, str) else None


def is_transient(exc: BaseException) -> bool:
    """Errors worth retrying: the infrastructure, not the message, is at fault."""
    if isinstance(exc, (OSError, TimeoutError, KafkaConnectionError, KafkaTimeoutError,
                        OperationalError, InterfaceError)):
        return True
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or sqlstate(exc) in _TRANSIENT_SQLSTATES
    return False


def is_data_error(exc: BaseException) -> bool:
    """PostgreSQL's data exceptions (SQLSTATE class 22: a NUL character, a number out of range): the value,
    not the service, is at fault."""
    state = sqlstate(exc)
    return state is not None and state.startswith("22")
