"""JSON-lines logging with request/event id and tenant in context, PII masked."""

from __future__ import annotations

import contextvars
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
event_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("event_id", default=None)
tenant_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("tenant", default=None)

PII_FIELDS = frozenset({"name", "phone", "email", "address", "id_number", "to", "recipient"})
_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
# Not inside identifiers such as UUIDs: no ASCII letter, digit, '_' or '-' on either side (a Chinese
# character next to a number must not protect it, so no \w here).
_PHONE = re.compile(r"(?<![A-Za-z0-9_-])\+?\d[\d -]{5,}(\d{4})(?![A-Za-z0-9_-])")
# Lookarounds, not \b: a Chinese character next to the digits is a word character too.
_ID_NUMBER = re.compile(r"(?<!\d)\d{6}(?:19|20)\d{2}\d{4}\d{3}[\dXx](?![\dXx])")


def mask_text(text: str) -> str:
    """Mask e-mail addresses, phone and ID numbers that appear in free text."""
    text = _ID_NUMBER.sub("******************", text)
    text = _EMAIL.sub(r"\1***@\2", text)
    return _PHONE.sub(r"***\1", text)


def mask_value(key: str, value: Any) -> Any:
    """Mask a structured log field whose key names PII."""
    if key in PII_FIELDS and value is not None:
        text = str(value)
        return "***" + text[-4:] if key in {"phone", "to"} and len(text) > 4 else "***"
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: mask_value(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_value(key, v) for v in value]
    return value


_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; context variables and ``extra=`` fields included, PII masked."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        """One JSON line with the context variables, PII masked."""
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": mask_text(record.getMessage()),
        }
        for key, var in (("request_id", request_id_var), ("event_id", event_id_var), ("tenant", tenant_var)):
            if (value := var.get()) is not None:
                entry[key] = value
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = mask_value(key, value)
        if record.exc_info:
            entry["exc"] = mask_text(self.formatException(record.exc_info))
        return orjson.dumps(entry, default=str).decode()


def configure_logging(service: str, level: str = "INFO") -> None:
    """Configure the root logger once per process."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "uvicorn.access", "kafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
