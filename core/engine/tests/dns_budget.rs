//! Measures the heap the DNS name table and answer cache hold when full, with a counting global
//! allocator, and checks it against the budgets written next to their bounds
//! (`dns::MAX_ADDRS`, `dns::MAX_CACHE_BYTES`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use embargo_engine::dns::{
    Cache, NameTable, MAX_ADDRS, MAX_CACHE_BYTES, MAX_CACHE_ENTRIES, MAX_NAMES_PER_ADDR,
};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// A typical answer: www.example.com A with one CNAME, ~80 bytes.
fn answer(i: usize) -> Vec<u8> {
    let name = format!("host{i}.example.com");
    let mut msg = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
    for label in name.split('.') {
        msg.push(label.len() as u8);
        msg.extend_from_slice(label.as_bytes());
    }
    msg.extend_from_slice(&[0, 0, 1, 0, 1]);
    msg.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 0x2c, 0, 4, 192, 0, 2, 1]);
    msg
}

// One test function: the allocator counts every thread, so measurements must not overlap.
#[test]
fn name_table_and_cache_stay_inside_their_budgets() {
    let now = Instant::now();

    // Name table: every address with one distinct name (the common case).
    let before = LIVE.load(Ordering::Relaxed);
    let mut table = NameTable::new();
    let no_chain: Arc<[Arc<str>]> = Arc::from(Vec::new());
    for i in 0..MAX_ADDRS * 2 {
        let addr = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i as u32));
        let name: Arc<str> = Arc::from(format!("tracker{i}.example.com"));
        table.insert(addr, &name, &no_chain, 300, now);
    }
    assert_eq!(table.len(), MAX_ADDRS);
    let per_addr = (LIVE.load(Ordering::Relaxed) - before) / MAX_ADDRS;
    println!("name table, full, one name per address: {per_addr} bytes per address");
    // The budget comment on MAX_ADDRS says 268 bytes per address (1.1 MiB full).
    assert!(per_addr <= 320, "{per_addr} bytes per address");
    drop(table);

    // Worst case: every address shared by the per-address maximum of names (CDN front ends).
    let before = LIVE.load(Ordering::Relaxed);
    let mut table = NameTable::new();
    let names: Vec<Arc<str>> = (0..MAX_NAMES_PER_ADDR)
        .map(|i| Arc::from(format!("shared{i}.example.com")))
        .collect();
    for i in 0..MAX_ADDRS {
        let addr = IpAddr::V6(Ipv6Addr::from(0x2001_0db8_u128 << 96 | i as u128));
        for name in &names {
            table.insert(addr, name, &no_chain, 300, now);
        }
    }
    let worst = LIVE.load(Ordering::Relaxed) - before;
    println!(
        "name table, full, {MAX_NAMES_PER_ADDR} names per address: {} KiB",
        worst / 1024
    );
    assert!(worst <= 3 * 1024 * 1024, "{worst} bytes");
    drop(table);

    // Answer cache filled past its bounds.
    let before = LIVE.load(Ordering::Relaxed);
    let mut cache = Cache::new();
    for i in 0..MAX_CACHE_ENTRIES * 2 {
        assert!(cache.insert(&answer(i), now));
    }
    assert_eq!(cache.len(), MAX_CACHE_ENTRIES);
    let used = LIVE.load(Ordering::Relaxed) - before;
    println!("answer cache, full: {} KiB", used / 1024);
    assert!(used <= MAX_CACHE_BYTES * 2, "{used} bytes");
}
