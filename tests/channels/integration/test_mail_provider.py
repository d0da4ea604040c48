"""MailProvider against a real SMTP server (the project's aiosmtpd sink) on a free port."""

from __future__ import annotations

from pathlib import Path

from services.channels.domain.providers import MailProvider, OutgoingEmail
from shared.devstack.embedded import free_port
from shared.devstack.smtp_sink import SmtpSink, read_mailbox


async def test_sends_each_message_once_with_its_contact_id(tmp_path: Path) -> None:
    port = free_port()
    sink = SmtpSink("127.0.0.1", port, tmp_path)
    sink.start()
    try:
        messages = [OutgoingEmail(f"c-{i}", f"user{i}@example.com", f"主题 {i}", f"正文 {i}") for i in range(3)]
        results = await MailProvider("127.0.0.1", port, "collections@gentle.example").send(messages)
    finally:
        sink.stop()
    assert [r.ok for r in results] == [True, True, True]
    mails = read_mailbox(tmp_path)
    assert sorted(m["X-Contact-Id"] for m in mails) == ["c-0", "c-1", "c-2"]
    assert {m["To"] for m in mails} == {"user0@example.com", "user1@example.com", "user2@example.com"}


async def test_unreachable_server_is_retryable_and_sends_nothing() -> None:
    results = await MailProvider("127.0.0.1", free_port(), "x@example.com").send(
        [OutgoingEmail("c-1", "a@example.com", "s", "b")])
    assert [(r.ok, r.retryable) for r in results] == [(False, True)]
