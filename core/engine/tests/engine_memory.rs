//! 10,000 concurrent TCP flows stay inside the written memory budget, measured with a counting
//! allocator (live heap bytes) and compared with the engine's own accounting.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use embargo_engine::budget::{self, BudgetInputs};
use embargo_engine::{Command, EngineConfig, UpstreamEvent};
use embargo_test_support::*;
use smoltcp::wire::TcpControl;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const FLOWS: usize = 10_000;

#[test]
fn ten_thousand_concurrent_flows_fit_the_budget() {
    // The defaults: the iOS budget configuration (see `budget`), which serves 10,000 at once.
    let config = EngineConfig::default();
    assert!(config.max_flows >= FLOWS, "{}", config.max_flows);
    let inputs = BudgetInputs {
        max_flows: config.max_flows,
        ring_total: config.tcp_ring_total,
        grow_total: config.tcp_grow_total,
        mtu: config.mtu,
        max_pending_dns: config.max_pending_dns,
        dns_cache_entries: config.dns_cache_entries,
    };
    let budget_bytes = budget::worst_case_bytes(inputs);
    assert!(budget_bytes <= budget::ENGINE_BUDGET, "{budget_bytes}");

    // Build every packet first so the measurement sees only the engine.
    let mut apps: Vec<AppConn> = (0..FLOWS)
        .map(|i| {
            AppConn::new(
                &format!("10.{}.{}.2:{}", i / 250, i % 250, 10_000 + i % 50_000),
                "198.51.100.7:5000",
            )
        })
        .collect();
    let syns: Vec<Vec<u8>> = apps.iter().map(AppConn::syn).collect();
    let index: std::collections::HashMap<std::net::SocketAddr, usize> =
        apps.iter().enumerate().map(|(i, a)| (a.src, i)).collect();

    let before = LIVE.load(Ordering::Relaxed);
    let mut h = Harness::with_config(config);
    let mut buf = vec![0u8; 2048];
    let mut synacks = 0;
    let mut events = 0;
    // As a driver would see it: batches of SYNs, the SYN-ACKs written out, the apps' ACKs,
    // their connects (a connect-first flow asks for its upstream on the app's ACK).
    for batch in syns.chunks(500) {
        for syn in batch {
            h.send(syn);
        }
        let segs = h.segs();
        synacks += segs.len();
        for s in &segs {
            let ack = apps[index[&s.dst]].on_synack(s);
            h.send(&ack);
        }
        let connects: Vec<_> = h
            .commands()
            .into_iter()
            .filter_map(|c| match c {
                Command::Connect { flow, .. } => Some(flow),
                _ => None,
            })
            .collect();
        assert_eq!(connects.len(), batch.len());
        for flow in connects {
            h.upstream(UpstreamEvent::Connected { flow });
        }
        while h.engine.poll_tun_packet(&mut buf).is_some() {}
        events += h.events().len();
    }
    assert_eq!(synacks, FLOWS);
    assert_eq!(events, FLOWS, "one decision per flow");
    let stats = h.engine.stats();
    let live = LIVE.load(Ordering::Relaxed) - before;
    let peak = PEAK.load(Ordering::Relaxed) - before;
    println!(
        "{FLOWS} flows: live heap {live} B ({:.1} MiB), peak {peak} B, engine accounting {} B, budget {budget_bytes} B ({:.1} MiB), SYN-ACKs {synacks}, per flow {} B",
        live as f64 / 1048576.0,
        stats.memory_bytes,
        budget_bytes as f64 / 1048576.0,
        live / FLOWS,
    );
    assert_eq!(stats.tcp_flows, FLOWS);
    assert_eq!(stats.sockets, FLOWS);
    assert!(live <= budget_bytes, "live {live} > budget {budget_bytes}");
    assert!(peak <= budget::IOS_EXTENSION_CAP, "peak {peak}");
    // The engine's own accounting is within 25% of the truth.
    let diff = (live as f64 - stats.memory_bytes as f64).abs() / live as f64;
    assert!(
        diff < 0.25,
        "accounting {} vs live {live}",
        stats.memory_bytes
    );
    let _ = TcpControl::None;
}
