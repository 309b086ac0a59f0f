//! Glob matching: the label matcher of label patterns (`log*.tiktokv.com`) and the
//! whole-name glob of AdBlock rules with its literal prefilter.

/// Whether the labels `left` of a query name (left of a pattern's fixed suffix, without the
/// dot before it) match a pattern's wildcard labels `pattern`, compared from the right, label
/// against label: all of `left` when `exact`, else its last labels (the names below a match
/// are in its subtree). No allocation.
pub(super) fn labels_match(pattern: &[u8], left: &[u8], exact: bool) -> bool {
    if left.is_empty() {
        return false;
    }
    let mut names = left.rsplit(|&b| b == b'.');
    for p in pattern.rsplit(|&b| b == b'.') {
        match names.next() {
            Some(n) if label_match(p, n) => {}
            _ => return false,
        }
    }
    !exact || names.next().is_none()
}

/// Whether one label `name` matches one pattern label, where `*` matches any run (possibly
/// empty) of bytes: the linear two-pointer match with one backtrack point.
fn label_match(pattern: &[u8], name: &[u8]) -> bool {
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < name.len() {
        match pattern.get(pi) {
            Some(b'*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == name[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(pi..)
        .unwrap_or_default()
        .iter()
        .all(|&c| c == b'*')
}

/// The longest run of non-`*` characters: a name must contain it for the glob to match.
pub(super) fn longest_literal(pattern: &str) -> &str {
    pattern
        .split('*')
        .max_by_key(|s| s.len())
        .unwrap_or_default()
}

/// Glob match where `*` matches any run of characters; unanchored ends match anywhere.
/// Linear-time two-pointer algorithm with single backtrack point (cost O(len(name) * pieces)).
pub(super) fn glob_match(
    pattern: &str,
    anchored_start: bool,
    anchored_end: bool,
    name: &str,
) -> bool {
    let mut p = String::with_capacity(pattern.len() + 2);
    if !anchored_start {
        p.push('*');
    }
    p.push_str(pattern);
    if !anchored_end {
        p.push('*');
    }
    let (p, n) = (p.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ni));
            pi += 1;
        } else if pi < p.len() && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_matcher() {
        for (p, n, want) in [
            ("log*", "log", true),
            ("log*", "log15", true),
            ("log*", "xlog15", false),
            ("*-normal", "api-normal", true),
            ("*-normal", "api-normal-c", false),
            ("*-normal*", "api16-normal-c", true),
            ("*-normal*", "-normal", true),
            ("log*-*", "log15-va", true),
            ("log*-*", "log-", true),
            ("log*-*", "log15", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "axxbyybc", true),
            ("a*b*c", "axxbyybcd", false),
            ("*", "x", true),
            ("mon", "mon", true),
            ("mon", "mona", false),
        ] {
            assert_eq!(label_match(p.as_bytes(), n.as_bytes()), want, "{p} {n}");
        }
        // Labels are compared from the right; a subtree pattern takes more labels on the left.
        assert!(labels_match(b"log*", b"log15", false));
        assert!(labels_match(b"log*", b"a.b.log15", false));
        assert!(!labels_match(b"log*", b"a.log15", true));
        assert!(labels_match(b"a*.b*", b"a1.b2", true));
        assert!(!labels_match(b"a*.b*", b"b2", false));
        assert!(!labels_match(b"a*.b*", b"x.b2", false));
        assert!(!labels_match(b"*", b"", false));
    }

    #[test]
    fn glob_matcher() {
        assert!(glob_match("a*c", true, true, "abbbc"));
        assert!(!glob_match("a*c", true, true, "abbbcd"));
        assert!(glob_match("a*c", true, false, "abbbcd"));
        assert!(glob_match("b*d", false, false, "abcde"));
        assert!(!glob_match("b*d", true, false, "abcde"));
    }
}
