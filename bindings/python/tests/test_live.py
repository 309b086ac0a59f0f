"""Live events, history and exports through the packet interface (no root needed): DNS
questions are pushed as IP packets, the real engine decides, answers come back to the sink."""

import asyncio
import json
import queue
import time

from embargo_ffi import (
    AggregateQuery,
    Dimension,
    ExportFormat,
    HiddenEntry,
    HistoryQuery,
    LiveEvent,
    PacketSink,
    PlatformHooks,
    Protocol,
    TunnelState,
    Verdict,
)
from packets import dns_answer_addrs, dns_query_packet


class QueueSink(PacketSink):
    def __init__(self):
        self.packets = queue.Queue()

    def write_packet(self, packet):
        self.packets.put(bytes(packet))


class NoHooks(PlatformHooks):
    def protect(self, fd):
        pass

    def app_owner(self, protocol, src, dst):
        return None


def next_event(embargo, timeout=5.0):
    """Awaits the suspendable next_event() under asyncio, with a timeout."""
    return asyncio.run(asyncio.wait_for(embargo.next_event(), timeout))


def wait_decision(embargo, name, timeout=5.0):
    deadline = time.time() + timeout
    seen = []
    while time.time() < deadline:
        ev = next_event(embargo, deadline - time.time())
        seen.append(ev)
        if ev.is_DECISION() and ev.event.name == name:
            return ev.event, seen
    raise AssertionError(f"no decision for {name}; saw {seen}")


def test_blocked_dns_question_gives_answer_event_and_history(embargo):
    sink = QueueSink()
    embargo.start_with_packets(sink, NoHooks())
    first = next_event(embargo)
    assert first == LiveEvent.STATE_CHANGED(TunnelState.RUNNING, None)
    assert embargo.status().state == TunnelState.RUNNING

    assert embargo.push_packet(dns_query_packet("log-va.tiktokv.com", sport=40001, qid=7))
    answer = sink.packets.get(timeout=5)
    rcode, addrs = dns_answer_addrs(answer)
    assert rcode == 0 and addrs == ["0.0.0.0"]

    ev, _ = wait_decision(embargo, "log-va.tiktokv.com")
    assert ev.protocol == Protocol.DNS
    assert ev.decision.verdict == Verdict.BLOCK
    assert ev.decision.rule.list == "builtin"
    assert ev.time_ms > 0

    # Second question, through the same live queue.
    embargo.push_packet(dns_query_packet("mon-va.tiktokv.com", sport=40002, qid=8))
    ev2, _ = wait_decision(embargo, "mon-va.tiktokv.com")
    assert ev2.decision.verdict == Verdict.BLOCK
    assert embargo.status().dns_blocked >= 2

    embargo.flush_history()
    page = embargo.history(HistoryQuery(verdict=Verdict.BLOCK))
    names = [r.name for r in page.records]
    assert "log-va.tiktokv.com" in names and "mon-va.tiktokv.com" in names
    row = next(r for r in page.records if r.name == "log-va.tiktokv.com")
    assert row.protocol == Protocol.DNS and row.list == "builtin" and row.count >= 1

    # Cursor paging: one row per page.
    p1 = embargo.history(HistoryQuery(limit=1))
    assert len(p1.records) == 1 and p1.next is not None
    p2 = embargo.history(HistoryQuery(limit=1, after=p1.next))
    assert len(p2.records) == 1 and p2.records[0].id != p1.records[0].id

    # Aggregates, hide filters, exports.
    total = embargo.aggregate(AggregateQuery())
    assert sum(r.blocked for r in total) >= 2
    by_owner = embargo.aggregate(AggregateQuery(group_by=[Dimension.OWNER]))
    assert any(r.owner and "ByteDance" in r.owner for r in by_owner)
    embargo.hide(HiddenEntry.NAME("mon-va.tiktokv.com"))
    assert "mon-va.tiktokv.com" not in [r.name for r in embargo.history(HistoryQuery()).records]
    assert "mon-va.tiktokv.com" in [
        r.name for r in embargo.history(HistoryQuery(include_hidden=True)).records
    ]
    assert embargo.hidden() == [HiddenEntry.NAME("mon-va.tiktokv.com")]
    assert embargo.unhide(HiddenEntry.NAME("mon-va.tiktokv.com")) is True
    rows = [json.loads(l) for l in embargo.export_history_bytes(HistoryQuery(), ExportFormat.NDJSON).splitlines()]
    assert {r["name"] for r in rows} >= {"log-va.tiktokv.com", "mon-va.tiktokv.com"}
    csv = embargo.export_history_bytes(HistoryQuery(), ExportFormat.CSV).decode()
    assert csv.splitlines()[0].startswith("id,") and "log-va.tiktokv.com" in csv
    assert embargo.history_stats().rows >= 2

    embargo.stop()
    ev = next_event(embargo)
    while not ev.is_STATE_CHANGED():
        ev = next_event(embargo)
    assert ev == LiveEvent.STATE_CHANGED(TunnelState.STOPPED, None)
    assert embargo.status().state == TunnelState.STOPPED


class RaisingSink(PacketSink):
    def write_packet(self, packet):
        raise RuntimeError("the app's packet flow is gone")


def test_an_exception_in_the_packet_sink_is_an_error_event_not_a_crash(embargo):
    embargo.start_with_packets(RaisingSink(), NoHooks())
    embargo.push_packet(dns_query_packet("log.tiktokv.com", sport=40003))
    deadline = time.time() + 5
    errors = []
    while time.time() < deadline and not errors:
        ev = next_event(embargo, deadline - time.time())
        if ev.is_ERROR():
            errors.append(ev.message)
    assert errors and "packet sink failed" in errors[0]
    assert embargo.status().state == TunnelState.RUNNING
    embargo.stop()


def test_close_ends_a_pending_wait(embargo):
    async def wait_and_close():
        task = asyncio.ensure_future(embargo.next_event())
        await asyncio.sleep(0.2)
        assert not task.done()
        embargo.shutdown()
        return await asyncio.wait_for(task, 5)

    assert asyncio.run(wait_and_close()) is None
