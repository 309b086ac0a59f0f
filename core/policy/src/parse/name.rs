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
    fn globs() {
        assert_eq!(normalize_glob("*.Ads**.com").unwrap(), "*.ads*.com");
        assert!(normalize_glob("a..*").is_err());
        assert!(normalize_glob("a b*").is_err());
    }
}
