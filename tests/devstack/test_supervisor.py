"""The local stack heals its children like an orchestrator (devstack/stack.py Supervisor): the decisions
with a fake clock, fake processes and a scripted probe, then one real service whose consumer halts."""

from __future__ import annotations

import asyncio
import itertools
import signal
import threading
import time
from collections import deque
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from devstack.embedded import EmbeddedBroker, free_port
from devstack.stack import Healing, LocalStack, Ports, Probe, Supervisor
from shared.contracts import topics
from shared.tools.topics import ensure_topics

HALTED = Probe(False, True, "503: halted: 51 consecutive poison messages on t/0")
REFUSED = Probe(False, False, "ConnectError")


class FakeProc:
    pids = itertools.count(1000)

    def __init__(self, *, ignores_sigterm: bool = False) -> None:
        self.pid = next(self.pids)
        self.returncode: int | None = None
        self.signals: list[int] = []
        self.ignores_sigterm = ignores_sigterm

    def poll(self) -> int | None:
        return self.returncode

    def send_signal(self, sig: int) -> None:
        self.signals.append(sig)
        if not self.ignores_sigterm:
            self.returncode = -sig

    def kill(self) -> None:
        self.returncode = -9


class FakeStack:
    def __init__(self, *names: str) -> None:
        self.procs = {name: FakeProc() for name in names}

    def respawn(self, name: str) -> FakeProc:
        self.procs[name] = FakeProc()
        return self.procs[name]

    def log_path(self, name: str) -> Path:
        return Path(f"/logs/{name}.log")

    def url(self, name: str) -> str:
        return f"http://{name}"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Harness:
    """A supervisor over fake children; ``probes[name]`` are answered in order, then healthy."""

    def __init__(self, *names: str, **policy: float) -> None:
        self.stack = FakeStack(*names)
        self.clock = Clock()
        self.probes: dict[str, deque[Probe]] = {name: deque() for name in names}
        self.probed: list[tuple[float, str]] = []
        defaults = {"interval_s": 5, "failures": 3, "backoff_base_s": 2, "backoff_max_s": 60,
                    "startup_grace_s": 90, "backoff_reset_s": 300, "stop_timeout_s": 30}
        self.supervisor = Supervisor(self.stack, Healing(**{**defaults, **policy}),  # type: ignore[arg-type]
                                     probe=self._probe, clock=self.clock, probed=set(names) - {"other"})

    def _probe(self, name: str) -> Probe:
        self.probed.append((self.clock.now, name))
        queue = self.probes[name]
        return queue.popleft() if queue else Probe(True)

    def run_until(self, until: float, step: float = 0.5) -> None:
        while self.clock.now <= until:
            self.supervisor.tick()
            self.clock.now += step

    def pid(self, name: str) -> int:
        return self.stack.procs[name].pid


def test_a_service_failing_its_probe_three_times_in_a_row_is_stopped_and_started_again() -> None:
    h = Harness("scheduler")
    first = h.stack.procs["scheduler"]
    h.probes["scheduler"].extend([HALTED] * 10)
    h.run_until(9.9)  # probes at 0 and 5: two failures
    assert first.signals == []
    h.run_until(10)  # the third, at 10: SIGTERM
    assert first.signals == [signal.SIGTERM]
    h.run_until(11.9)  # it exited at once; the first restart waits backoff_base_s
    assert h.pid("scheduler") == first.pid
    [restart] = h.supervisor.restarts
    assert (restart.name, restart.delay_s) == ("scheduler", 2)
    assert restart.reason == "/healthz failed 3 times in a row (503: halted: 51 consecutive poison messages on t/0)"
    h.run_until(12.5)
    assert h.pid("scheduler") != first.pid


def test_failures_that_are_not_in_a_row_do_not_restart() -> None:
    h = Harness("plans")
    h.probes["plans"].extend([HALTED, HALTED, Probe(True), HALTED, HALTED, Probe(True), HALTED, HALTED])
    h.run_until(60)
    assert h.supervisor.restarts == [] and h.stack.procs["plans"].signals == []
    assert [t for t, _ in h.probed][:4] == [0, 5, 10, 15]  # every interval_s


def test_a_starting_service_may_refuse_connections_during_the_grace_but_not_after() -> None:
    h = Harness("compliance", startup_grace_s=20)
    h.probes["compliance"].extend([REFUSED] * 20)
    h.run_until(19.9)  # refused at 0, 5, 10, 15: still starting
    assert h.supervisor.restarts == []
    h.run_until(30.5)  # refused at 20, 25, 30: three failures after the grace
    assert [r.reason for r in h.supervisor.restarts] == ["/healthz failed 3 times in a row (ConnectError)"]


def test_after_its_first_healthy_answer_a_refused_connection_counts() -> None:
    h = Harness("channels", startup_grace_s=1000)
    h.probes["channels"].extend([Probe(True), REFUSED, REFUSED, REFUSED])
    h.run_until(16)
    assert len(h.supervisor.restarts) == 1


def test_a_non_200_answer_counts_even_while_starting() -> None:
    h = Harness("segmentation", startup_grace_s=1000)
    h.probes["segmentation"].extend([HALTED] * 3)
    h.run_until(11)
    assert len(h.supervisor.restarts) == 1


def test_restarts_in_a_row_back_off_up_to_the_cap_and_start_over_after_a_healthy_stretch() -> None:
    h = Harness("other", backoff_base_s=2, backoff_max_s=10, backoff_reset_s=100)  # not probed: exits only
    for _ in range(5):
        h.stack.procs["other"].returncode = 1
        h.run_until(h.clock.now + 15)  # long enough for any delay
    assert [r.delay_s for r in h.supervisor.restarts] == [2, 4, 8, 10, 10]
    assert all(r.reason == "exited with code 1" for r in h.supervisor.restarts)
    h.run_until(h.clock.now + 101)  # ran fine for longer than backoff_reset_s
    h.stack.procs["other"].returncode = 1
    h.run_until(h.clock.now + 3)
    assert h.supervisor.restarts[-1].delay_s == 2


def test_a_service_that_ignores_sigterm_is_killed_after_the_stop_timeout() -> None:
    h = Harness("scheduler", stop_timeout_s=8)
    stuck = FakeProc(ignores_sigterm=True)
    h.stack.procs["scheduler"] = stuck
    h.probes["scheduler"].extend([HALTED] * 3)
    h.run_until(17.5)
    assert stuck.signals == [signal.SIGTERM] and stuck.returncode is None
    h.run_until(18)
    assert stuck.returncode == -9
    h.run_until(21)
    assert h.pid("scheduler") != stuck.pid and len(h.supervisor.restarts) == 1


def test_children_are_healed_independently() -> None:
    h = Harness("scheduler", "plans", "other")
    h.probes["scheduler"].extend([HALTED] * 3)
    plans, other = h.pid("plans"), h.pid("other")
    h.run_until(20)
    assert [r.name for r in h.supervisor.restarts] == ["scheduler"]
    assert (h.pid("plans"), h.pid("other")) == (plans, other)


def test_the_services_and_the_sms_sandbox_are_probed_by_default() -> None:
    from devstack.stack import PROBED
    from shared.registry import NAMES

    assert frozenset({*NAMES, "sms"}) == PROBED


def test_the_policy_reads_the_environment_and_refuses_nonsense() -> None:
    policy = Healing.from_env({"DEVSTACK_HEALING_INTERVAL_S": "1.5", "DEVSTACK_HEALING_FAILURES": "5"})
    assert (policy.interval_s, policy.failures, policy.timeout_s) == (1.5, 5, Healing().timeout_s)
    assert Healing.from_env({}) == Healing()
    with pytest.raises(ValueError, match="invalid healing policy"):
        Healing(failures=0)


def test_the_probe_tells_a_port_nobody_listens_on_from_an_answer() -> None:
    stack = FakeStack("scheduler")
    stack.url = lambda name: f"http://127.0.0.1:{free_port()}"  # type: ignore[method-assign]
    supervisor = Supervisor(stack, Healing(timeout_s=2))  # type: ignore[arg-type]
    assert supervisor.probe("scheduler") == Probe(False, False, "ConnectError")


# --- one real service: its consumer halts on a poison message, /healthz fails, the supervisor restarts it --

@pytest.mark.integration
def test_a_service_whose_consumer_halted_is_restarted_with_backoff(tmp_path: Path) -> None:
    broker = EmbeddedBroker(free_port())
    broker.start(tmp_path / "broker.log")
    stack: LocalStack | None = None
    stop = threading.Event()
    try:
        asyncio.run(ensure_topics(broker.bootstrap, partitions=1))
        asyncio.run(_publish_poison(broker.bootstrap))
        # No database is needed to halt on an unparseable message: point it at a port nothing listens on.
        stack = LocalStack(tmp_path / "stack", Ports.free(), kafka=broker.bootstrap,
                           database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none",
                           env={"APP_ENV": "test", "SEGMENTATION_DLQ_MAX_CONSECUTIVE": "0",
                                "SEGMENTATION_OUTBOX_POLL_INTERVAL_S": "5"})
        stack.start_apps(("segmentation",))
        first_pid = stack.procs["segmentation"].pid
        supervisor = Supervisor(stack, Healing(interval_s=0.5, timeout_s=2, failures=3, backoff_base_s=1,
                                               startup_grace_s=60))
        thread = threading.Thread(target=supervisor.run, args=(stop,), daemon=True)
        thread.start()
        deadline = time.monotonic() + 90
        while len(supervisor.restarts) < 2 or stack.procs["segmentation"].pid == first_pid:
            assert thread.is_alive()
            assert time.monotonic() < deadline, f"restarts so far: {supervisor.restarts}"
            time.sleep(0.2)
        first, second = supervisor.restarts[:2]
        for restart in (first, second):
            assert restart.name == "segmentation"
            assert restart.reason.startswith("/healthz failed 3 times in a row (503: halted: ")
            assert "poison" in restart.reason and f"{topics.ACCOUNT_OVERDUE.name}/0" in restart.reason
        assert (first.delay_s, second.delay_s) == (1, 2)  # backoff
        assert second.at - first.at >= first.delay_s
        log = stack.log_path("segmentation").read_text(encoding="utf-8")
        assert log.count("consumer halted") >= 2  # the first process and the restarted one
    finally:
        stop.set()
        if stack is not None:
            stack.stop_apps(timeout_s=15)
        broker.stop()


async def _publish_poison(bootstrap: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topics.ACCOUNT_OVERDUE.name, b"{not json", key=b"tenant-a:C1")
    finally:
        await producer.stop()
