"""CloudEvents 1.0 envelope (JSON structured mode) with our extensions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 envelope; ``data`` is validated separately against the topic's payload."""

    model_config = ConfigDict(extra="allow")

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(min_length=1, max_length=200)
    source: str = Field(min_length=1)
    type: str = Field(min_length=1)
    subject: str | None = None
    time: datetime
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str | None = None
    tenant: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    traceparent: str | None = None
    correlationid: str | None = None
    causationid: str | None = None
    data: dict[str, Any]

    @field_validator("time")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("time must carry a UTC offset")
        return value.astimezone(UTC)

    def to_bytes(self) -> bytes:
        """The event as JSON (structured mode), as it goes on the wire."""
        return orjson.dumps(self.model_dump(mode="json", exclude_none=True))

    @classmethod
    def from_bytes(cls, raw: bytes) -> CloudEvent:
        """Parse and validate an event from the wire."""
        return cls.model_validate_json(raw)


def new_event_id() -> str:
    """A new unique event id (UUID4)."""
    return str(uuid.uuid4())
