"""The local stack behind `make run`, the end-to-end tests and the benchmark.

Starts (unless DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS point elsewhere) embedded PostgreSQL and
the Kafka-API broker, creates topics, migrates, then runs the SMTP sink, the SMS sandbox and the
five services as separate processes. Ctrl-C or SIGTERM stops everything in reverse order.

While it runs, the :class:`Supervisor` heals the children as an orchestrator would: a child that exits
is started again, and so is a service whose ``/healthz`` (liveness: it fails once the consumer halted)
fails ``failures`` times in a row, with a growing delay between restarts (:class:`Healing`,
docs/operations.md, "The local stack heals itself").
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
from collections.abc import Callable, Collection, Mapping
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
PROBED = frozenset({*SERVICES, "sms"})
"""Children with a ``/healthz`` liveness endpoint: the services and the SMS sandbox."""


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
                 kafka: str | None = None, partitions: int = 6, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir.resolve()
        self.ports = ports or Ports()
        self.database_url = database_url
        self.kafka = kafka
        self.partitions = partitions
        self.extra_env = env or {}
        self.postgres: EmbeddedPostgres | None = None
        self.broker: EmbeddedBroker | None = None
        self.smtp: SmtpSink | None = None
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._commands: dict[str, tuple[list[str], dict[str, str]]] = {}

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
            "PYTHONUNBUFFERED": "1",
        })
        env.update({f"{s.env_prefix}PORT": str(self.ports.of(s.name)) for s in registry.SERVICES})
        # customers' portal links (plans' /portal/l/<token>, minted by plans and by channels in its messages)
        # point at the local plans unless the environment names another address
        env.setdefault("PORTAL_BASE_URL", self.url("plans"))
        env.update(self.extra_env)
        return env

    def start_apps(self, services: tuple[str, ...] = SERVICES) -> None:
        """SMTP sink (in this process), SMS sandbox and the services (child processes)."""
        logs = self.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.smtp = SmtpSink("127.0.0.1", self.ports.smtp, self.maildir)
        self.smtp.start()
        receipts = f"{self.url('channels')}/v1/webhooks/sms/receipts"
        inbound = f"{self.url('channels')}/v1/webhooks/sms/inbound"
        env = self.service_env()
        self._spawn("sms", [sys.executable, "-m", "devstack.sms_sandbox", "--port", str(self.ports.sms),
                            "--receipt-url", receipts, "--inbound-url", inbound,
                            "--store", str(self.data_dir / "sms" / "messages.jsonl")],
                    env)
        for service in services:
            self._spawn(service, [sys.executable, "-m", registry.spec(service).module], env)

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        self._commands[name] = (cmd, env)
        self._launch(name, cmd, env)

    def _launch(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        with open(self.log_path(name), "ab") as out:  # the child keeps its own copy of the descriptor
            self.procs[name] = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                                cwd=Path(__file__).resolve().parents[1])

    def log_path(self, name: str) -> Path:
        return self.data_dir / "logs" / f"{name}.log"

    def stop_child(self, name: str, timeout_s: float = 30.0) -> None:
        """Stop child ``name`` (SIGTERM, then SIGKILL after ``timeout_s``); :meth:`respawn` starts it again."""
        proc = self.procs[name]
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def respawn(self, name: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start child ``name`` again (the old process must have exited), as it was first started, with
        ``env`` added to its environment for this run only (an operator raising a limit for one run)."""
        cmd, base = self._commands[name]
        self._launch(name, cmd, {**base, **(env or {})})
        return self.procs[name]

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


@dataclass(frozen=True)
class Healing:
    """How the :class:`Supervisor` heals the stack's children, after Kubernetes' probes and restart policy.

    Every ``interval_s`` each service's ``/healthz`` is probed (``timeout_s``). ``failures`` failures in a
    row and the service is stopped (SIGTERM; SIGKILL after ``stop_timeout_s``) and started again. Until
    its first healthy answer a (re)started service may refuse connections for ``startup_grace_s`` (it
    binds its port once its producer started); an answer other than 200 counts at once. A child that
    exits is started again too. Restart ``n`` in a row waits ``backoff_base_s * 2**(n-1)`` seconds, at
    most ``backoff_max_s``; the count starts over once the child stayed healthy for ``backoff_reset_s``.
    Each field can be set by the environment variable ``DEVSTACK_HEALING_<FIELD>`` (upper case).
    """

    interval_s: float = 5.0
    timeout_s: float = 3.0
    failures: int = 3
    startup_grace_s: float = 90.0
    backoff_base_s: float = 2.0
    backoff_max_s: float = 60.0
    backoff_reset_s: float = 300.0
    stop_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if self.failures < 1 or min(self.interval_s, self.timeout_s, self.backoff_max_s) <= 0 or min(
                self.startup_grace_s, self.backoff_base_s, self.backoff_reset_s, self.stop_timeout_s) < 0:
            raise ValueError(f"invalid healing policy: {self}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Healing:
        values: dict[str, float | int] = {}
        for f in fields(cls):
            raw = env.get(f"DEVSTACK_HEALING_{f.name.upper()}")
            if raw is not None:
                values[f.name] = int(raw) if f.name == "failures" else float(raw)
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Probe:
    """One liveness probe: ``ok`` (a 200), ``answered`` (the service listens: it answered something, or
    accepted the connection and then hung), and what went wrong."""

    ok: bool
    answered: bool = True
    detail: str = ""


@dataclass
class ChildHealth:
    """What the supervisor knows of one child. Pure bookkeeping: times come from the caller's clock."""

    policy: Healing
    started_at: float
    failures: int = 0
    answered: bool = False
    """The child answered its probe healthy once since it was (re)started."""
    ok_since: float | None = None
    """Start of the current healthy stretch (None while failing)."""
    restarts: int = 0
    """Restarts in a row (the backoff exponent); back to 0 after ``backoff_reset_s`` healthy."""

    def started(self, now: float) -> None:
        self.started_at, self.failures, self.answered, self.ok_since = now, 0, False, None

    def healthy(self, now: float) -> None:
        """A healthy probe, or (for a child without a probe) a tick while it runs."""
        self.failures, self.answered = 0, True
        if self.ok_since is None:
            self.ok_since = now
        if self.restarts and now - self.ok_since >= self.policy.backoff_reset_s:
            self.restarts = 0

    def probed(self, now: float, probe: Probe) -> str | None:
        """Count a probe; returns why the child must be restarted, or None."""
        if probe.ok:
            self.healthy(now)
            return None
        if not probe.answered and not self.answered and now - self.started_at < self.policy.startup_grace_s:
            return None  # still starting: it does not listen yet
        self.ok_since = None
        self.failures += 1
        if self.failures < self.policy.failures:
            return None
        return f"/healthz failed {self.failures} times in a row ({probe.detail})"

    def next_restart_delay(self) -> float:
        """Count a restart; returns how long to wait before it."""
        delay = min(self.policy.backoff_base_s * 2 ** self.restarts, self.policy.backoff_max_s)
        self.restarts += 1
        return delay


@dataclass(frozen=True)
class Restart:
    """A restart the supervisor decided: when (its clock), which child, why, and after what delay."""

    at: float
    name: str
    reason: str
    delay_s: float


class Supervisor:
    """Keeps the stack's children running, as an orchestrator would (:class:`Healing`): call :meth:`tick`
    periodically, or :meth:`run` until an event is set. The children named in ``probed`` are probed on
    ``/healthz``; the others are only restarted when they exit. Every decision is logged and kept in
    :attr:`restarts`."""

    def __init__(self, stack: LocalStack, policy: Healing | None = None, *,
                 probe: Callable[[str], Probe] | None = None, probed: Collection[str] = PROBED,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stack = stack
        self.policy = policy or Healing()
        self.probed = frozenset(probed)
        self.clock = clock
        self.probe = probe or self._probe_healthz
        self.restarts: list[Restart] = []
        now = clock()
        self._health = {name: ChildHealth(self.policy, started_at=now) for name in stack.procs}
        self._next_probe = dict.fromkeys(stack.procs, now)
        self._stopping: dict[str, tuple[float, str]] = {}  # name -> (SIGKILL deadline, why)
        self._due: dict[str, float] = {}  # name -> when to start it again
        self._client: httpx.Client | None = None

    def run(self, stop: threading.Event) -> None:
        """Supervise until ``stop`` is set."""
        try:
            while not stop.is_set():
                self.tick()
                stop.wait(min(1.0, self.policy.interval_s / 2))
        finally:
            if self._client is not None:
                self._client.close()

    def tick(self) -> None:
        for name, health in self._health.items():
            self._tick_child(name, health, self.clock())

    def _tick_child(self, name: str, health: ChildHealth, now: float) -> None:
        proc = self.stack.procs[name]
        if name in self._due:
            if now < self._due[name]:
                return
            del self._due[name]
            proc = self.stack.respawn(name)
            health.started(now)
            self._next_probe[name] = now + self.policy.interval_s
            log.warning("%s started again (pid %s, restart %d in a row)", name, proc.pid, health.restarts)
            return
        if name in self._stopping:
            deadline, why = self._stopping[name]
            if proc.poll() is None:
                if now >= deadline:
                    log.error("%s did not stop within %.0f s of SIGTERM; killing it", name, self.policy.stop_timeout_s)
                    proc.kill()
                return
            del self._stopping[name]
            self._schedule(name, health, now, why)
            return
        code = proc.poll()
        if code is not None:
            self._schedule(name, health, now, f"exited with code {code}")
            return
        if name not in self.probed:
            health.healthy(now)
            return
        if now < self._next_probe[name]:
            return
        self._next_probe[name] = now + self.policy.interval_s
        reason = health.probed(now, self.probe(name))
        if reason is not None:
            log.error("%s: %s; stopping it to start it again (see %s)", name, reason, self.stack.log_path(name))
            proc.send_signal(signal.SIGTERM)
            self._stopping[name] = (now + self.policy.stop_timeout_s, reason)

    def _schedule(self, name: str, health: ChildHealth, now: float, reason: str) -> None:
        delay = health.next_restart_delay()
        self._due[name] = now + delay
        self.restarts.append(Restart(now, name, reason, delay))
        log.error("%s %s; starting it again in %.1f s (restart %d in a row; log: %s)", name,
                  reason if reason.startswith("exited") else f"stopped: {reason}", delay, health.restarts,
                  self.stack.log_path(name))

    def _probe_healthz(self, name: str) -> Probe:
        if self._client is None:
            self._client = httpx.Client(timeout=self.policy.timeout_s)
        try:
            response = self._client.get(f"{self.stack.url(name)}/healthz")
        except httpx.HTTPError as exc:
            # Refused or timed out connecting: not listening (yet). Accepted but no answer: it hangs.
            listening = isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout)
            return Probe(False, listening, f"{type(exc).__name__}")
        if response.status_code == 200:
            return Probe(True)
        try:
            body = response.json()
            detail = body.get("consumer") or body.get("detail") or ""
        except ValueError:
            detail = response.text[:200]
        return Probe(False, True, f"{response.status_code}: {detail}" if detail else str(response.status_code))


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
        healing = Healing.from_env()
        log.info("healing: /healthz every %g s, restart after %d failures in a row", healing.interval_s,
                 healing.failures)
        Supervisor(stack, healing).run(stop)
    finally:
        log.info("stopping ...")
        stack.stop()
        log.info("stopped")


if __name__ == "__main__":
    main()
