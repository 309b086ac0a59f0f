//! Address ranges: nested CIDR rules flattened at compile time into sorted interval starts,
//! and the lookups that read those tables in place.

use super::{MetaRule, NO_RULE};
use crate::format;

pub(super) fn lookup_v4(table: &[u8], key: u32) -> Option<u32> {
    let n = table.len() / 8;
    // Largest i with start[i] <= key.
    let (mut lo, mut hi) = (0usize, n);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if format::read_u32(table, mid * 4) <= key {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    let i = lo.checked_sub(1)?;
    let v = format::read_u32(table, n * 4 + i * 4);
    (v != NO_RULE).then_some(v)
}

pub(super) fn lookup_v6(table: &[u8], key: u128) -> Option<u32> {
    let n = table.len() / 20;
    let (mut lo, mut hi) = (0usize, n);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if format::read_u128_be(table, mid * 16) <= key {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    let i = lo.checked_sub(1)?;
    let v = format::read_u32(table, n * 16 + i * 4);
    (v != NO_RULE).then_some(v)
}

/// Flattens nested CIDR ranges into sorted interval starts with the most specific rule each
/// (or [`NO_RULE`]). CIDRs are either nested or disjoint, so a stack sweep in (start, wider
/// first) order gives the answer in O(n log n). For an identical network, an allow rule wins.
pub(super) fn flatten(
    mut ranges: Vec<(u128, u128, u32)>,
    rules: &[MetaRule],
    max: u128,
) -> Vec<(u128, u32)> {
    let allow = |i: u32| rules.get(i as usize).is_some_and(|r| r.allow);
    ranges.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then(b.1.cmp(&a.1))
            .then(allow(b.2).cmp(&allow(a.2)))
    });
    ranges.dedup_by(|b, a| a.0 == b.0 && a.1 == b.1);
    let mut out: Vec<(u128, u32)> = Vec::new();
    let mut stack: Vec<(u128, u32)> = Vec::new();
    for (start, end, idx) in ranges {
        pop_ended(Some(start), max, &mut stack, &mut out);
        emit_point(start, idx, &mut out);
        stack.push((end, idx));
    }
    pop_ended(None, max, &mut stack, &mut out);
    out
}

/// Closes every open range that ends before `limit` (all of them when `None`): after a range
/// ends, its parent's rule (or none) applies again.
fn pop_ended(
    limit: Option<u128>,
    max: u128,
    stack: &mut Vec<(u128, u32)>,
    out: &mut Vec<(u128, u32)>,
) {
    while let Some(&(end, _)) = stack.last() {
        if limit.is_some_and(|s| end >= s) {
            break;
        }
        stack.pop();
        if end < max {
            let parent = stack.last().map_or(NO_RULE, |&(_, v)| v);
            emit_point(end + 1, parent, out);
        }
    }
}

/// Appends "from `pos` on, rule `val`", merging with the last point when they coincide.
fn emit_point(pos: u128, val: u32, out: &mut Vec<(u128, u32)>) {
    if let Some(last) = out.last_mut() {
        if last.0 == pos {
            last.1 = val;
            // Merge with the previous interval if it now carries the same value.
            let n = out.len();
            if n >= 2 && out[n - 2].1 == val {
                out.pop();
            }
            return;
        }
        if last.1 == val {
            return;
        }
    }
    out.push((pos, val));
}

#[cfg(test)]
mod tests {
    use super::super::tests::addr_rule;
    use super::super::RuleSetBuilder;
    use crate::rules::Action;

    #[test]
    fn nested_cidrs_most_specific_wins() {
        let mut b = RuleSetBuilder::new();
        b.add(addr_rule("10.0.0.0", 8, Action::Block, 1));
        b.add(addr_rule("10.1.0.0", 16, Action::Allow, 2));
        b.add(addr_rule("10.1.2.3", 32, Action::Block, 3));
        b.add(addr_rule("255.255.255.0", 24, Action::Block, 4));
        b.add(addr_rule("2400:3200::", 32, Action::Block, 5));
        b.add(addr_rule("2400:3200:1::", 48, Action::Allow, 6));
        let set = b.build();
        let line = |a: &str| set.match_addr(a.parse().unwrap()).map(|r| r.line);
        assert_eq!(line("10.0.0.1"), Some(1));
        assert_eq!(line("10.1.0.1"), Some(2));
        assert_eq!(line("10.1.2.3"), Some(3));
        assert_eq!(line("10.1.2.4"), Some(2));
        assert_eq!(line("10.2.0.0"), Some(1));
        assert_eq!(line("11.0.0.0"), None);
        assert_eq!(line("9.255.255.255"), None);
        assert_eq!(line("255.255.255.255"), Some(4));
        assert_eq!(line("::ffff:10.0.0.1"), Some(1));
        assert_eq!(line("2400:3200::1"), Some(5));
        assert_eq!(line("2400:3200:1::1"), Some(6));
        assert_eq!(line("2400:3201::"), None);
    }
}
