"""The topic map: topic name -> event type and payload model. Names carry the version."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from shared.contracts import events as ev
from shared.registry import SERVICES


@dataclass(frozen=True, slots=True)
class Topic:
    """A topic: its name (with the version), the event type on it and the payload model."""

    name: str
    event_type: str
    payload: type[BaseModel]
    description: str


def _t(name: str, event_type: str, payload: type[BaseModel], description: str) -> Topic:
    return Topic(name, f"com.gentlecollections.{event_type}", payload, description)


ACCOUNT_OVERDUE = _t("core.account-overdue.v1", "core.AccountOverdue.v1", ev.AccountOverdueV1,
                     "Core banking (or a partner via REST): an account is overdue / its DPD changed")
PAYMENT_RECEIVED = _t("core.payment-received.v1", "core.PaymentReceived.v1", ev.PaymentReceivedV1,
                      "Core banking (or a partner via REST): a payment arrived")
INSTALMENT_DUE = _t("core.instalment-due.v1", "core.InstalmentDue.v1", ev.InstalmentDueV1,
                    "Core banking (or a partner via REST): an instalment falls due soon (the early warning)")
ACCOUNT_SEGMENTED = _t("segmentation.account-segmented.v1", "segmentation.AccountSegmented.v1",
                       ev.AccountSegmentedV1, "An overdue account was classified into a segment and DPD bucket")
CONTACT_REQUESTED = _t("scheduler.contact-requested.v1", "scheduler.ContactRequested.v1",
                       ev.ContactRequestV1, "A treatment step is due: the scheduler asks for a contact")
CONTACT_APPROVED = _t("compliance.contact-approved.v1", "compliance.ContactApproved.v1",
                      ev.ContactApprovedV1, "Compliance approved the contact for now")
CONTACT_REJECTED = _t("compliance.contact-rejected.v1", "compliance.ContactRejected.v1",
                      ev.ContactRejectedV1, "Compliance blocked the contact or deferred it to retry_at")
CONTACT_OUTCOME = _t("channels.contact-outcome.v1", "channels.ContactOutcome.v1", ev.ContactOutcomeV1,
                     "A channel made (or failed) the contact")
PLAN_EVENT = _t("plans.plan-event.v1", "plans.PlanEvent.v1", ev.PlanEventV1,
                "A repayment plan was agreed, cancelled, completed or broken")

PROMISE_EVENT = _t("plans.promise-event.v1", "plans.PromiseEvent.v1", ev.PromiseEventV1,
                   "A promise to pay was made, kept, partly kept, broken or cancelled")
WRITE_OFF = _t("plans.write-off.v1", "plans.WriteOff.v1", ev.WriteOffV1,
               "An approved settlement or waiver was fulfilled: core banking writes off the rest")
CUSTOMER_REQUEST = _t("plans.customer-request.v1", "plans.CustomerRequest.v1", ev.CustomerRequestV1,
                      "A customer declared hardship, complained or opted out on the self-service portal")

HOLD_CHANGED = _t("compliance.hold-changed.v1", "compliance.HoldChanged.v1", ev.HoldChangedV1,
                  "A hold on automated contact was placed on or lifted from an account (or a customer)")

OPT_OUT = _t("channels.opt-out.v1", "channels.ContactOptOut.v1", ev.ContactOptOutV1,
             "A customer asked for no more messages to a contact point (a TD / STOP reply)")

ALL_TOPICS: tuple[Topic, ...] = (
    ACCOUNT_OVERDUE, PAYMENT_RECEIVED, INSTALMENT_DUE, ACCOUNT_SEGMENTED, CONTACT_REQUESTED,
    CONTACT_APPROVED, CONTACT_REJECTED, CONTACT_OUTCOME, PLAN_EVENT, HOLD_CHANGED, OPT_OUT,
    PROMISE_EVENT, WRITE_OFF, CUSTOMER_REQUEST,
)
BY_NAME = {t.name: t for t in ALL_TOPICS}
CONSUMER_GROUPS: tuple[str, ...] = tuple(s.consumer_group for s in SERVICES)  # every service consumes


def dlq_topic(group: str) -> str:
    """Dead-letter topic of a consumer group."""
    return f"{group}.dlq"


def message_key(tenant: str, customer_id: str) -> bytes:
    """Every topic is keyed by tenant:customer_id so one consumer sees a customer's events in order."""
    return f"{tenant}:{customer_id}".encode()
