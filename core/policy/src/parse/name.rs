//! Host-name validation shared by every parser.
//!
//! Names leave the parsers lowercase, without a trailing dot, made only of ASCII letters,
//! digits, `-`, `_` and `.`, with no empty label, labels of at most 63 bytes and at most 253
//! bytes in all (RFC 1035 limits). `_` is allowed because real lists carry service names such
//! as `_dmarc.example.com`. Non-ASCII names must arrive already in IDNA form (`xn--...`).

/// RFC 1035: a name is at most 255 octets on the wire, which is 253 characters in text form.
pub const MAX_NAME_LEN: usize = 253;
/// RFC 1035: a label is at most 63 octets.
pub const MAX_LABEL_LEN: usize = 63;

/// Checks `raw` as a host name and returns it in canonical form (lowercase, no trailing dot).
///
/// The error says what is wrong, for a [`crate::LoadError`] message.
pub fn normalize_name(raw: &str) -> Result<String, String> {
    let name = raw.strip_suffix('.').unwrap_or(raw);
    check_name_chars(name, false)?;
    Ok(name.to_ascii_lowercase())
}

/// Like [`normalize_name`] but also allows `*` (AdBlock wildcard patterns); labels may then be
/// empty only where a `*` stands for them, so only the length and character rules apply.
pub(crate) fn normalize_glob(raw: &str) -> Result<String, String> {
    check_name_chars(raw, true)?;
    // Collapse runs of `*`: `a**b` means the same as `a*b` and would only cost matching time.
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if c == '*' && out.ends_with('*') {
            continue;
        }
        out.push(c.to_ascii_lowercase());
    }
    Ok(out)
}

/// Checks a label pattern (`log*.tiktokv.com`, Embargo's native format) and returns it in
/// canonical form (lowercase, no trailing dot).
///
/// A `*` stands for any run of characters inside one label; labels may not be empty, a label
/// may not hold `**`, and the fixed suffix (the labels right of the last label with a `*`)
/// must have at least two labels, so that a pattern is always keyed by a registrable-looking
/// suffix (`tiktokv.com`), never by a top-level domain alone.
pub(crate) fn normalize_label_pattern(raw: &str) -> Result<String, String> {
    let pattern = raw.strip_suffix('.').unwrap_or(raw);
    check_name_chars(pattern, true)?;
    let pattern = pattern.to_ascii_lowercase();
    label_pattern_split(&pattern)?;
    Ok(pattern)
}

/// Where the fixed suffix of a canonical label pattern starts (the byte after the dot that
/// ends the last label with a `*`), or why the pattern is not one.
pub(crate) fn label_pattern_split(pattern: &str) -> Result<usize, String> {
    let wild = label_pattern_wild_part(pattern)?;
    let fixed = pattern.get(wild + 1..).unwrap_or_default();
    if wild == 0 || fixed.split('.').count() < 2 || fixed.split('.').any(str::is_empty) {
        return Err(format!(
            "pattern {pattern:?} needs at least two labels without `*` at its end \
             (e.g. log*.tiktokv.com)"
        ));
    }
    Ok(wild + 1)
}

/// The length of the labels up to and including the last one holding a `*` (0 when none),
/// checking them: no empty label, no `**`, at most [`MAX_LABEL_LEN`] bytes each, only name
/// characters and `*`.
pub(crate) fn label_pattern_wild_part(pattern: &str) -> Result<usize, String> {
    if pattern.len() > MAX_NAME_LEN {
        return Err(format!(
            "pattern is {} bytes long, more than the DNS limit of {MAX_NAME_LEN}",
            pattern.len()
        ));
    }
    let mut wild = 0;
    let mut at = 0;
    for label in pattern.split('.') {
        if label.is_empty() {
            return Err("empty label (leading dot or \"..\") in pattern".into());
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(format!(
                "label {label:?} is longer than {MAX_LABEL_LEN} bytes"
            ));
        }
        if label.contains("**") {
            return Err(format!(
                "label {label:?} holds `**`; one `*` already matches any run of characters"
            ));
        }
        if !label.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'*')
        }) {
            return Err(format!(
                "label {label:?} holds a character not allowed in a name"
            ));
        }
        at += label.len();
        if label.contains('*') {
            wild = at;
        }
        at += 1;
    }
    Ok(wild)
}

fn check_name_chars(name: &str, allow_star: bool) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty name".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "name is {} bytes long, more than the DNS limit of {MAX_NAME_LEN}",
            name.len()
        ));
    }
    for c in name.chars() {
        let ok =
            c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') || (allow_star && c == '*');
        if !ok {
            return Err(if c.is_ascii_whitespace() {
                "name contains a space".into()
            } else if !c.is_ascii() {
                format!("non-ASCII character {c:?} in name; write it in IDNA form (xn--...)")
            } else {
                format!("character {c:?} is not allowed in a host name")
            });
        }
    }
    if allow_star {
        // A glob's labels may be partly or wholly `*`; an empty label is still an error
        // unless a `*` is next to it (e.g. `*.` at the start).
        for label in name.split('.') {
            if label.len() > MAX_LABEL_LEN {
                return Err(format!(
                    "label {label:?} is longer than {MAX_LABEL_LEN} bytes"
                ));
            }
        }
        if name.contains("..") {
            return Err("empty label (\"..\") in pattern".into());
        }
        return Ok(());
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("empty label (leading dot or \"..\")".into());
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(format!(
                "label {label:?} is longer than {MAX_LABEL_LEN} bytes"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form() {
        assert_eq!(normalize_name("Example.COM.").unwrap(), "example.com");
        assert_eq!(normalize_name("_dmarc.x-y.io").unwrap(), "_dmarc.x-y.io");
        assert_eq!(normalize_name("localhost").unwrap(), "localhost");
    }

    #[test]
    fn rejects_bad_names() {
        for bad in [
            "",
            ".",
            "a..b",
            ".a.b",
            "a b",
            "a/b",
            "ex*ample.com",
            "bücher.de",
            "a:b",
        ] {
            assert!(normalize_name(bad).is_err(), "{bad:?} accepted");
        }
        let long_label = format!("{}.com", "a".repeat(64));
        assert!(normalize_name(&long_label).is_err());
        let ok_label = format!("{}.com", "a".repeat(63));
        assert!(normalize_name(&ok_label).is_ok());
        let long_name = ["abcdefghi"; 26].join(".");
        assert_eq!(long_name.len(), 259);
        assert!(normalize_name(&long_name).is_err());
    }

    #[test]
    fn label_patterns() {
        assert_eq!(
            normalize_label_pattern("LOG*.TikTokv.com.").unwrap(),
            "log*.tiktokv.com"
        );
        assert_eq!(label_pattern_split("log*.tiktokv.com"), Ok(5));
        assert_eq!(label_pattern_split("a*.b.c*.d.tiktokv.com"), Ok(8));
        for good in [
            "*.tiktokv.com",
            "mon-*.tiktokv.com",
            "log*-*.byteoversea.com",
        ] {
            assert!(normalize_label_pattern(good).is_ok(), "{good}");
        }
        for (bad, why) in [
            ("log*.com", "two labels"),
            ("log.tiktokv.c*m", "two labels"),
            ("log.*.com", "two labels"),
            ("tiktokv.com", "two labels"),
            ("lo**g.tiktokv.com", "`**`"),
            ("a..*.tiktokv.com", "empty label"),
            (".*.tiktokv.com", "empty label"),
            ("l?g*.tiktokv.com", "not allowed"),
        ] {
            let err = normalize_label_pattern(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn globs() {
        assert_eq!(normalize_glob("*.Ads**.com").unwrap(), "*.ads*.com");
        assert!(normalize_glob("a..*").is_err());
        assert!(normalize_glob("a b*").is_err());
    }
}
