//! A name decision is on the packet path of every DNS question and connection: it must not
//! allocate when a rule matches a name of ordinary length (the list name is shared and the rule
//! text is inline up to 24 bytes). Counted with a global allocator of this test binary's own.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use embargo_policy::parse::{parse_bytes, Format};
use embargo_policy::{AppRules, IpDb, Policy, Query, Reason, RuleSetBuilder, Verdict};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is a side effect.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn policy(format: Format, list: &str, text: &str) -> Policy {
    let mut builder = RuleSetBuilder::new();
    let report = parse_bytes(format, list, text.as_bytes(), &mut |r| builder.add(r));
    assert_eq!(report.error_count, 0);
    Policy::new(
        vec![Arc::new(builder.build())],
        IpDb::new(),
        AppRules::default(),
    )
}

/// Allocations made by `f`, with its result.
fn allocations<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let out = f();
    (ALLOCATIONS.load(Ordering::Relaxed) - before, out)
}

#[test]
fn a_name_rule_decision_allocates_nothing() {
    // The test harness runs tests on threads of their own; this binary has this one test, so
    // nothing else allocates while it counts.
    let hosts = policy(
        Format::Hosts,
        "stevenblack-hosts.txt",
        "0.0.0.0 ads.example.com\n",
    );
    let subtree = policy(
        Format::Domains { subdomains: true },
        "trackers.txt",
        "metrics.example.net\n",
    );
    let exception = policy(
        Format::AdBlock,
        "filters.txt",
        "||example.org^\n@@||ok.example.org^\n",
    );
    for (policy, name, rule) in [
        (&hosts, "ads.example.com", "=ads.example.com"),
        (&subtree, "x.metrics.example.net", "metrics.example.net"),
        (&exception, "ok.example.org", "@@ok.example.org"),
    ] {
        let (count, decision) = allocations(|| policy.decide(&Query::name(name)));
        let Reason::NameRule { rule: r, .. } = &decision.reason else {
            panic!("{name}: {:?}", decision.reason);
        };
        assert_eq!(r.rule, rule);
        assert_eq!(count, 0, "{name}: {count} allocations for {decision:?}");
    }
    // A miss, and the verdict alone, allocate nothing either.
    let (count, verdict) = allocations(|| hosts.verdict(&Query::name("example.com")));
    assert_eq!((count, verdict), (0, Verdict::Allow));
}
