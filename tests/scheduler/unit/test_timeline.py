"""The built-in strategy as a table (services/scheduler/domain/strategies/builtin.py, read by the interpreter) and
contact ids (services/scheduler/domain/timeline.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.scheduler.domain.strategies.builtin import BUILTIN
from services.scheduler.domain.strategies.interpreter import Account, step_for
from services.scheduler.domain.timeline import contact_id_for
from shared.contracts.events import Channel, Segment

PROPS = settings(max_examples=200, deadline=None, database=None)

NOW = datetime(2026, 3, 20, 2, 0, tzinfo=UTC)


class StepPlan(NamedTuple):
    step: str
    channel: Channel
    template_id: str


P, S, H = Segment.PRIME, Segment.STANDARD, Segment.HIGH_RISK
SMS = StepPlan("reminder", Channel.SMS, "reminder.sms")
EMAIL = StepPlan("reminder", Channel.EMAIL, "reminder.email")
CALL = StepPlan("call", Channel.CALL, "call.script")
FIELD = StepPlan("field-visit", Channel.FIELD, "field.visit")
PRE_SMS = StepPlan("pre-due", Channel.SMS, "pre_due.sms")
PRE_EMAIL = StepPlan("pre-due", Channel.EMAIL, "pre_due.email")


def plan(segment: Segment, dpd: int, *, phone: bool = True, email: bool = True,
         address: bool = True) -> StepPlan | None:
    account = Account(segment=segment.value, days_past_due=dpd, due_date=NOW.date() - timedelta(days=dpd),
                      overdue_minor=100_00, time_zone="Asia/Shanghai", has_phone=phone, has_email=email,
                      has_address=address)
    planned = step_for(BUILTIN, account, now=NOW)
    if planned is None:
        return None
    if dpd >= -3:
        assert planned.due_at == NOW  # the built-in steps name no time of day: due as soon as their day comes
    else:  # announced before the pre-due reminder's day (DPD -3): planned for the start of that local day
        assert planned.due_at == datetime.combine(account.due_date - timedelta(days=3), datetime.min.time(),
                                                  tzinfo=ZoneInfo("Asia/Shanghai"))
    return StepPlan(planned.step, planned.channel, planned.template)


@pytest.mark.parametrize(
    ("segment", "dpd", "phone", "email", "address", "expected"),
    [
        # DPD 0: only high-risk customers are reminded (early warning)
        (P, 0, True, True, True, None),
        (S, 0, True, True, True, None),
        (H, 0, True, True, True, PRE_SMS),
        (H, 0, False, True, True, PRE_EMAIL),
        (H, 0, False, False, True, None),
        (S, -3, True, True, True, None),
        # DPD 1-15: reminders, prime prefers e-mail, others SMS
        (P, 1, True, True, True, EMAIL),
        (P, 15, True, True, True, EMAIL),
        (P, 1, True, False, True, SMS),
        (S, 1, True, True, True, SMS),
        (S, 15, True, True, True, SMS),
        (H, 7, True, True, True, SMS),
        (S, 7, False, True, True, EMAIL),
        (H, 7, False, True, True, EMAIL),
        (S, 7, False, False, True, None),
        (P, 7, False, False, False, None),
        # DPD 16-30: calls when there is a phone number
        (P, 16, True, True, True, CALL),
        (S, 16, True, True, True, CALL),
        (H, 30, True, True, True, CALL),
        (S, 20, True, False, False, CALL),
        # no phone: the call step is made on its fallback, under its own id (another contact than the reminder)
        (S, 20, False, True, True, StepPlan("call", Channel.EMAIL, "reminder.email")),
        (P, 20, False, True, False, StepPlan("call", Channel.EMAIL, "reminder.email")),
        (H, 30, False, False, True, None),
        # DPD 31+: field visits for non-prime customers with an address
        (S, 31, True, True, True, FIELD),
        (H, 31, True, True, True, FIELD),
        (H, 200, False, False, True, FIELD),
        # no address: the field visit is made on its fallbacks, a call, else an e-mail
        (S, 45, True, True, False, StepPlan("field-visit", Channel.CALL, "call.script")),
        (H, 45, False, True, False, StepPlan("field-visit", Channel.EMAIL, "reminder.email")),
        (H, 45, False, False, False, None),
        (P, 31, True, True, True, CALL),
        (P, 60, False, True, True, StepPlan("call", Channel.EMAIL, "reminder.email")),
        (P, 60, False, False, True, None),
    ],
)
def test_step_and_channel_table(segment: Segment, dpd: int, phone: bool, email: bool, address: bool,
                                expected: StepPlan | None) -> None:
    assert plan(segment, dpd, phone=phone, email=email, address=address) == expected


@pytest.mark.parametrize(("dpd", "expected"), [(15, SMS), (16, CALL), (30, CALL), (31, FIELD)])
def test_step_boundaries_for_standard(dpd: int, expected: StepPlan) -> None:
    assert plan(S, dpd) == expected


@PROPS
@given(segment=st.sampled_from(list(Segment)), dpd=st.integers(-5, 400), phone=st.booleans(),
       email=st.booleans(), address=st.booleans())
def test_plan_only_uses_existing_contact_points_and_fits_the_timeline(
        segment: Segment, dpd: int, phone: bool, email: bool, address: bool) -> None:
    step = plan(segment, dpd, phone=phone, email=email, address=address)
    if step is None:
        return
    needs = {Channel.SMS: phone, Channel.CALL: phone, Channel.EMAIL: email, Channel.FIELD: address}
    assert needs[step.channel]
    if step.channel is Channel.FIELD:
        assert dpd > 30 and segment is not Segment.PRIME
    if step.channel is Channel.CALL:
        assert dpd > 15
    if dpd <= 0:
        assert segment is Segment.HIGH_RISK and step in (PRE_SMS, PRE_EMAIL)
    else:
        assert step.step != "pre-due"
    assert step.step in {"pre-due", "reminder", "call", "field-visit"}
    assert step.template_id in {"pre_due.sms", "pre_due.email", "reminder.sms", "reminder.email", "call.script",
                                "field.visit"}


def test_the_pre_due_reminder_is_another_contact_than_the_first_overdue_reminder() -> None:
    due = date(2026, 3, 1)
    pre, first = (contact_id_for(tenant="t", account_id="A1", step=plan(Segment.HIGH_RISK, dpd).step, due_date=due)
                  for dpd in (0, 1))  # type: ignore[union-attr]
    assert pre != first


@PROPS
@given(segment=st.sampled_from(list(Segment)), dpd=st.integers(1, 400))
def test_some_step_whenever_any_contact_point_for_the_stage_exists(segment: Segment, dpd: int) -> None:
    assert plan(segment, dpd, phone=True, email=False, address=False) is not None
    assert plan(segment, dpd, phone=False, email=True, address=False) is not None


DUE = date(2026, 3, 1)


def test_contact_id_is_deterministic_uuid() -> None:
    first = contact_id_for(tenant="tenant-a", account_id="ACC-1", step="reminder", due_date=DUE)
    again = contact_id_for(tenant="tenant-a", account_id="ACC-1", step="reminder", due_date=DUE)
    assert first == again
    assert uuid.UUID(first).version == 5


@pytest.mark.parametrize(
    "changed",
    [
        {"tenant": "tenant-b"},
        {"account_id": "ACC-2"},
        {"step": "call"},
        {"due_date": date(2026, 4, 1)},
    ],
)
def test_contact_id_differs_by_tenant_account_step_and_due_date(changed: dict[str, object]) -> None:
    base: dict[str, object] = {"tenant": "tenant-a", "account_id": "ACC-1", "step": "reminder",
                               "due_date": DUE}
    assert contact_id_for(**base) != contact_id_for(**{**base, **changed})  # type: ignore[arg-type]


@PROPS
@given(a=st.tuples(st.sampled_from(["t1", "t2"]), st.sampled_from(["A1", "A2"]),
                   st.sampled_from(["reminder", "call", "field-visit"]), st.dates()),
       b=st.tuples(st.sampled_from(["t1", "t2"]), st.sampled_from(["A1", "A2"]),
                   st.sampled_from(["reminder", "call", "field-visit"]), st.dates()))
def test_contact_id_equal_iff_inputs_equal(a: tuple[str, str, str, date],
                                           b: tuple[str, str, str, date]) -> None:
    def cid(x: tuple[str, str, str, date]) -> str:
        return contact_id_for(tenant=x[0], account_id=x[1], step=x[2], due_date=x[3])

    assert (cid(a) == cid(b)) == (a == b)
