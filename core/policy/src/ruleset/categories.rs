//! The `categories` section: per list, runs of lines and the category the list gives them
//! (Disconnect's `services.json` groups its services by category, contiguously; an Exodus
//! tracker names its own). A few hundred ranges at most, so the section is JSON decoded at load
//! and looked up by binary search, only when a decision is explained.

use serde::{Deserialize, Serialize};

/// Line ranges -> category, sorted by (list, first line).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Categories {
    /// Distinct category names.
    names: Vec<String>,
    /// (list, first line, last line inclusive, index into `names`).
    ranges: Vec<(u16, u32, u32, u32)>,
}

impl Categories {
    /// Adds a range (compile time).
    pub(crate) fn add(&mut self, list: u16, first: u32, last: u32, category: &str) {
        if first > last || category.is_empty() {
            return;
        }
        let index = match self.names.iter().position(|n| n == category) {
            Some(i) => i,
            None => {
                self.names.push(category.to_owned());
                self.names.len() - 1
            }
        };
        self.ranges.push((list, first, last, index as u32));
    }

    /// Sorts the ranges for lookup (compile time).
    pub(crate) fn finish(&mut self) {
        self.ranges.sort_unstable();
        self.ranges.dedup_by(|b, a| a.0 == b.0 && a.1 == b.1);
    }

    /// Checks what lookups trust: sorted ranges and category indexes in bounds.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self
            .ranges
            .windows(2)
            .any(|w| (w[0].0, w[0].1) >= (w[1].0, w[1].1))
        {
            return Err("ranges are not sorted".into());
        }
        if self.ranges.iter().any(|r| r.3 as usize >= self.names.len()) {
            return Err("a range names a category that is not there".into());
        }
        Ok(())
    }

    /// The category of `line` of `list`: the range starting last at or before it, if it
    /// reaches the line.
    pub(crate) fn lookup(&self, list: u16, line: u32) -> Option<&str> {
        let after = self.ranges.partition_point(|r| (r.0, r.1) <= (list, line));
        let r = self.ranges.get(after.checked_sub(1)?)?;
        (r.0 == list && line <= r.2)
            .then(|| self.names.get(r.3 as usize).map(String::as_str))
            .flatten()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_the_range_of_a_line() {
        let mut c = Categories::default();
        c.add(0, 10, 19, "Advertising");
        c.add(0, 20, u32::MAX, "Analytics");
        c.add(1, 5, 5, "Advertising");
        c.add(0, 3, 2, "backwards");
        c.finish();
        assert_eq!(c.check(), Ok(()));
        assert_eq!(c.names.len(), 2);
        assert_eq!(c.lookup(0, 9), None);
        assert_eq!(c.lookup(0, 10), Some("Advertising"));
        assert_eq!(c.lookup(0, 19), Some("Advertising"));
        assert_eq!(c.lookup(0, 20), Some("Analytics"));
        assert_eq!(c.lookup(0, 1_000_000), Some("Analytics"));
        assert_eq!(c.lookup(1, 4), None);
        assert_eq!(c.lookup(1, 5), Some("Advertising"));
        assert_eq!(c.lookup(1, 6), None);
        assert_eq!(c.lookup(2, 5), None);
    }
}
