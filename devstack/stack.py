"""The local stack behind `make run`, the end-to-end tests and the benchmark.

Starts (unless DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS point elsewhere) embedded PostgreSQL and
the Kafka-API broker, creates topics, migrates, then runs the SMTP sink, the SMS sandbox and the
five services as separate processes. Ctrl-C or SIGTERM stops everything in reverse order.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import httpx

from devstack.embedded import EmbeddedBroker, EmbeddedPostgres, free_port, wait_for_port
from devstack.smtp_sink import SmtpSink
from shared import registry
from shared.tools import migrate
from shared.tools.topics import ensure_topics

log = logging.getLogger("stack")
SERVICES = registry.NAMES


def _default_service_ports() -> dict[str, int]:
    return {s.name: s.port for s in registry.SERVICES}


@dataclass
class Ports:
    services: dict[str, int] = field(default_factory=_default_service_ports)
    sms: int = 8090
    smtp: int = 2525
    postgres: int = 55432
    kafka: int = 59092

    @classmethod
    def free(cls) -> Ports:
        return cls(services={name: free_port() for name in SERVICES},
                   **{f.name: free_port() for f in fields(cls) if f.name != "services"})

    def of(self, name: str) -> int:
        """The port of a service or of one of the local servers (sms, smtp, postgres, kafka)."""
        return self.services[name] if name in self.services else int(getattr(self, name))


class LocalStack:
    def __init__(self, data_dir: Path, ports: Ports | None = None, *, database_url: str | None = None,
                 kafka: str | None = None, partitions: int = 6, env: dict[str, str] | None = None,
                 webhook_token: str = "dev-webhook-token") -> None:  # noqa: S107
        self.data_dir = data_dir.resolve()
        self.ports = ports or Ports()
        self.database_url = database_url
        self.kafka = kafka
        self.partitions = partitions
        self.extra_env = env or {}
        self.webhook_token = webhook_token
        self.postgres: EmbeddedPostgres | None = None
        self.broker: EmbeddedBroker | None = None
        self.smtp: SmtpSink | None = None
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def maildir(self) -> Path:
        return self.data_dir / "mail"

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports.of(service)}"

    def start_infra(self) -> None:
        """Database and broker (embedded unless given), topics, migrations."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.database_url is None:
            self.postgres = EmbeddedPostgres(self.data_dir / "postgres", self.ports.postgres)
            self.postgres.start()
            self.database_url = self.postgres.url
        if self.kafka is None:
            self.broker = EmbeddedBroker(self.ports.kafka)
            self.broker.start(self.data_dir / "broker.log")
            self.kafka = self.broker.bootstrap
        asyncio.run(ensure_topics(self.kafka, partitions=self.partitions))
        migrate.upgrade(self.database_url)

    def service_env(self) -> dict[str, str]:
        assert self.database_url and self.kafka
        env = dict(os.environ)
        env.update({
            "DATABASE_URL": self.database_url, "KAFKA_BOOTSTRAP_SERVERS": self.kafka,
            "CHANNELS_SMS_BASE_URL": self.url("sms"), "CHANNELS_SMTP_PORT": str(self.ports.smtp),
            "CHANNELS_WEBHOOK_TOKEN": self.webhook_token, "PYTHONUNBUFFERED": "1",
        })
        env.update({f"{s.env_prefix}PORT": str(self.ports.of(s.name)) for s in registry.SERVICES})
        env.update(self.extra_env)
        return env

    def start_apps(self, services: tuple[str, ...] = SERVICES) -> None:
        """SMTP sink (in this process), SMS sandbox and the services (child processes)."""
        logs = self.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.smtp = SmtpSink("127.0.0.1", self.ports.smtp, self.maildir)
        self.smtp.start()
        receipts = f"{self.url('channels')}/v1/webhooks/sms/receipts?token={self.webhook_token}"
        env = self.service_env()
        self._spawn("sms", [sys.executable, "-m", "devstack.sms_sandbox", "--port", str(self.ports.sms),
                            "--receipt-url", receipts, "--store", str(self.data_dir / "sms" / "messages.jsonl")],
                    env, logs)
        for service in services:
            self._spawn(service, [sys.executable, "-m", registry.spec(service).module], env, logs)

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str], logs: Path) -> None:
        out = open(logs / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                            cwd=Path(__file__).resolve().parents[1])

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        """Block until every service answers /readyz with 200 (or a child died)."""
        deadline = time.monotonic() + timeout_s
        wait_for_port(self.ports.sms, timeout_s)
        pending = {s for s in self.procs if s != "sms"}
        with httpx.Client(timeout=3) as client:
            while pending:
                for name in sorted(pending):
                    proc = self.procs[name]
                    if proc.poll() is not None:
                        raise RuntimeError(f"{name} exited with {proc.returncode}; see "
                                           f"{self.data_dir / 'logs' / (name + '.log')}")
                    try:
                        if client.get(f"{self.url(name)}/readyz").status_code == 200:
                            pending.discard(name)
                    except httpx.HTTPError:
                        pass
                if pending and time.monotonic() > deadline:
                    raise TimeoutError(f"not ready after {timeout_s}s: {', '.join(sorted(pending))}")
                time.sleep(0.3)

    def stop_apps(self, timeout_s: float = 30.0) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for proc in self.procs.values():
            try:
                proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()
        if self.smtp is not None:
            self.smtp.stop()
            self.smtp = None

    def stop(self) -> None:
        self.stop_apps()
        if self.broker is not None:
            self.broker.stop()
        if self.postgres is not None:
            self.postgres.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=Path(".data"))
    parser.add_argument("--partitions", type=int, default=int(os.environ.get("KAFKA_PARTITIONS", "6")))
    args = parser.parse_args()
    logging.basicConfig(level="INFO", format="%(asctime)s %(name)s %(message)s")
    for chatty in ("mail.log", "httpx", "alembic.runtime.migration"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    stack = LocalStack(args.data_dir, database_url=os.environ.get("DATABASE_URL"),
                       kafka=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), partitions=args.partitions)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        log.info("starting PostgreSQL, the broker, topics and migrations ...")
        stack.start_infra()
        log.info("starting the SMTP sink, the SMS sandbox and the five services ...")
        stack.start_apps()
        stack.wait_ready()
        lines = [f"  {s:<13} {stack.url(s)}  (docs: {stack.url(s)}/docs, metrics: {stack.url(s)}/metrics)"
                 for s in SERVICES]
        lines += [f"  {'sms sandbox':<13} {stack.url('sms')}/messages",
                  f"  {'smtp sink':<13} 127.0.0.1:{stack.ports.smtp} -> {stack.maildir}/",
                  f"  {'postgres':<13} {stack.database_url}", f"  {'kafka':<13} {stack.kafka}",
                  f"  {'logs':<13} {stack.data_dir / 'logs'}/", "Ctrl-C stops everything."]
        sys.stderr.write("\nGentle collections is running:\n" + "\n".join(lines) + "\n\n")
        while not stop.is_set():
            for name, proc in stack.procs.items():
                if proc.poll() is not None:
                    log.error("%s exited with %s; stopping the stack (see .data/logs/%s.log)", name,
                              proc.returncode, name)
                    stop.set()
            stop.wait(1.0)
    finally:
        log.info("stopping ...")
        stack.stop()
        log.info("stopped")


if __name__ == "__main__":
    main()
