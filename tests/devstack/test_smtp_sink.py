"""Tests for the local SMTP sink."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib

from devstack.smtp_sink import SmtpSink, read_mailbox

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """Return a TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_message(to: str, subject: str, body: str) -> EmailMessage:
    """Build a plain-text message from the platform's sender address."""
    msg = EmailMessage()
    msg["From"] = "notices@bank.example"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(body)
    return msg


async def test_sink_stores_messages_as_eml_files(tmp_path: Path) -> None:
    maildir = tmp_path / "mail"
    port = free_port()
    with SmtpSink("127.0.0.1", port, maildir):
        await aiosmtplib.send(
            make_message(
                "li.wei@example.com", "还款提醒 Payment reminder", "您好，您的账单已到期。\nThanks."
            ),
            hostname="127.0.0.1",
            port=port,
        )
        await aiosmtplib.send(
            make_message("second@example.com", "Second", "two"), hostname="127.0.0.1", port=port
        )

    files = sorted(p.name for p in maildir.iterdir())
    assert len(files) == 2
    assert all(name.endswith(".eml") and name[:8].isdigit() for name in files)  # no temp files left behind
    assert b"Subject:" in (maildir / files[0]).read_bytes()

    first, second = read_mailbox(maildir)
    assert first["Subject"] == "还款提醒 Payment reminder"
    assert first["To"] == "li.wei@example.com"
    assert first["From"] == "notices@bank.example"
    body = first.get_body(preferencelist=("plain",))
    assert body is not None and "您的账单已到期" in body.get_content()
    assert (second["Subject"], second["To"]) == ("Second", "second@example.com")


async def test_stop_is_idempotent_and_frees_the_port(tmp_path: Path) -> None:
    port = free_port()
    sink = SmtpSink("127.0.0.1", port, tmp_path)
    sink.start()
    sink.stop()
    sink.stop()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
    assert read_mailbox(tmp_path) == []


async def test_command_line_entry_point_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    maildir = tmp_path / "cli-mail"
    cmd = [sys.executable, "-m", "devstack.smtp_sink", "--port", str(port), "--dir", str(maildir)]
    proc = await asyncio.create_subprocess_exec(*cmd, cwd=ROOT, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                await aiosmtplib.send(
                    make_message("cli@example.com", "CLI", "hello"), hostname="127.0.0.1", port=port
                )
                break
            except aiosmtplib.SMTPConnectError:
                assert time.monotonic() < deadline, "SMTP sink did not start"
                await asyncio.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 0, stderr.decode()
    assert [m["Subject"] for m in read_mailbox(maildir)] == ["CLI"]
