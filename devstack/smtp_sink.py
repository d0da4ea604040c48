"""Local SMTP sink: accepts every message and stores it as an ``.eml`` file.

Run it with ``python -m devstack.smtp_sink --host 127.0.0.1 --port 2525 --dir .data/mail``.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import logging
import os
import signal
import threading
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

logger = logging.getLogger(__name__)


class _MaildirHandler:
    def __init__(self, maildir: Path) -> None:
        self.maildir = maildir

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        name = f"{datetime.now(UTC):%Y%m%dT%H%M%S.%fZ}-{uuid.uuid4()}.eml"
        tmp = self.maildir / f".{name}.tmp"
        tmp.write_bytes(raw)
        # readers only look at *.eml, so the rename makes the whole message appear at once
        os.replace(tmp, self.maildir / name)
        logger.info("stored %s (%d bytes, %d recipients)", name, len(raw), len(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


class SmtpSink:
    """An SMTP server in a background thread that writes each message to ``maildir``."""

    def __init__(self, host: str, port: int, maildir: Path) -> None:
        self.host, self.port, self.maildir = host, port, Path(maildir)
        self._controller: Controller | None = None

    def start(self) -> None:
        """Create ``maildir`` and start listening; returns once the server accepts connections."""
        self.maildir.mkdir(parents=True, exist_ok=True)
        controller = Controller(
            _MaildirHandler(self.maildir), hostname=self.host, port=self.port, enable_SMTPUTF8=True
        )
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        """Stop the server and join its thread; safe to call twice."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpSink:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def read_mailbox(maildir: Path) -> list[EmailMessage]:
    """Parse every stored message in ``maildir``, oldest first."""
    messages: list[EmailMessage] = []
    # file names start with a UTC timestamp, so name order is arrival order
    for path in sorted(Path(maildir).glob("*.eml")):
        messages.append(email.message_from_bytes(path.read_bytes(), policy=email.policy.default))
    return messages


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: run the sink until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(description="Local SMTP sink that stores messages as .eml files")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--dir", type=Path, default=Path(".data/mail"), help="where .eml files are written")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    sink = SmtpSink(args.host, args.port, args.dir)
    sink.start()
    logger.info("SMTP sink on %s:%d writing to %s", args.host, args.port, args.dir)
    try:
        stop.wait()
    finally:
        sink.stop()
        logger.info("SMTP sink stopped")


if __name__ == "__main__":
    main()
