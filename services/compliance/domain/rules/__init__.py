"""Contact rules (``../shared/RULES.md``; docs/compliance.md): the vocabulary (:mod:`.base`), one module per
pack (:mod:`.cn`, :mod:`.us`, :mod:`.uk`, :mod:`.house`) and the engine (:mod:`.engine`). Pure: no SQL, HTTP
or Kafka. Every decision keeps every rule's verdict."""

from __future__ import annotations

from services.compliance.domain.rules.base import ContactContext, Decision, Policy, RuleResult
from services.compliance.domain.rules.engine import PACKS, RULES, RuleInfo, decide, rule_catalog, validate_policy

__all__ = ["PACKS", "RULES", "ContactContext", "Decision", "Policy", "RuleInfo", "RuleResult", "decide",
           "rule_catalog", "validate_policy"]
