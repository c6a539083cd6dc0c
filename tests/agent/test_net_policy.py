"""The safety net's timing: pure arithmetic, no relay."""

from __future__ import annotations

from parley.agent.subscriptions import Finding, NetPolicy, SafetyNet

KEY = ("parley://relay", b"q" * 24)


def test_gap_backs_off_to_its_cap() -> None:
    policy = NetPolicy(expecting=20.0, expecting_cap=600.0, quiet=600.0, quiet_cap=86400.0)
    assert [policy.gap(True, n) for n in range(7)] == [20, 40, 80, 160, 320, 600, 600]
    assert policy.gap(False, 0) == 600.0
    assert policy.gap(False, 10_000) == 86400.0  # no overflow for huge counts


def test_checks_back_off_and_a_message_starts_over() -> None:
    net = SafetyNet(NetPolicy(expecting=10.0, expecting_cap=100.0))
    assert not net.due(KEY, True, 0.0)  # first seen now
    assert net.due(KEY, True, 10.0)
    net.checked(KEY, 10.0, renewed=False, found=None)
    assert not net.due(KEY, True, 29.0)  # the next gap is 20 s
    assert net.due(KEY, True, 30.0)
    net.received(KEY, 31.0)
    assert not net.due(KEY, True, 40.0)
    assert net.due(KEY, True, 41.0)
    assert net.seen(KEY) == 1


def test_a_failed_message_makes_the_queue_due_at_once() -> None:
    net = SafetyNet(NetPolicy())
    net.received(KEY, 0.0)
    net.suspect(KEY, 1.0)
    assert net.due(KEY, False, 1.0)


def test_report_counts_what_was_found() -> None:
    net = SafetyNet(NetPolicy())
    net.checked(KEY, 1.0, renewed=True, found=Finding("c1", KEY[0], 5.0))
    net.checked(KEY, 2.0, renewed=False, found=None)
    net.failed(KEY, 3.0, "command timeout")
    net.pass_done(6.0)
    r = net.report()
    assert (r.passes, r.checks, r.renewed, r.found, r.errors) == (1, 3, 1, 1, 1)
    assert r.last_error == "command timeout"
    assert [f.conn_id for f in r.recent] == ["c1"]
