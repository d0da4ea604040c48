"""Contact ids: one contact per account, step and delinquency cycle. Which step comes when is a strategy's
(``domain/strategies/``: the built-in one is the contact timeline of docs/domain.md)."""

from __future__ import annotations

import uuid
from datetime import date

_NAMESPACE = uuid.UUID("6f1c2a52-7d3e-4c55-9a0b-3e4f0c1d2b7a")


def contact_id_for(*, tenant: str, account_id: str, step: str, due_date: date) -> str:
    """Deterministic: one contact per account, step and delinquency cycle, however often replayed."""
    return str(uuid.uuid5(_NAMESPACE, f"{tenant}|{account_id}|{step}|{due_date.isoformat()}"))
