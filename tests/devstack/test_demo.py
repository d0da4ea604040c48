"""The demo portfolio is valid, varied and deterministic."""

from devstack.demo import portfolio


def test_demo_portfolio_covers_segments_buckets_and_zones() -> None:
    accounts = portfolio(300, seed=7)
    assert len(accounts) == 300
    assert [a.account_id for a in portfolio(50, seed=7)] == [a.account_id for a in accounts[:50]]
    assert {a.tenant for a in accounts} == {"tenant-a", "tenant-b"}
    dpds = {a.days_past_due for a in accounts}
    assert min(dpds) == 0 and max(dpds) > 90
    assert any(1 <= d <= 15 for d in dpds) and any(16 <= d <= 30 for d in dpds)
    assert len({a.contact.time_zone for a in accounts}) >= 4
    assert {a.credit_rating for a in accounts} == set("ABCDE")
    assert all(a.contact.phone and a.contact.phone.startswith("pii:v1:") for a in accounts)
    assert any(a.co_lenders for a in accounts)


def test_demo_without_a_running_stack_says_so_in_one_line() -> None:
    import subprocess
    import sys

    from devstack.embedded import free_port

    done = subprocess.run([sys.executable, "-m", "devstack.demo", "--count", "3", "--bootstrap",
                           f"127.0.0.1:{free_port()}"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "make run" in lines[0] and "no Kafka broker answers" in lines[0], done.stderr
