//! Plain enums shared by several parts of the API.
//!
//! [`Protocol`], [`Verdict`] and [`Certainty`] are the core's own types (`embargo-types`),
//! exposed with UniFFI's remote-type mirrors below: the compiler checks each mirror against
//! the real enum, and no conversion code exists. Deriving `uniffi::Enum` in `embargo-types`
//! instead would need `uniffi::setup_scaffolding!()` there, which makes it a UniFFI
//! component of its own: its types would move to another Kotlin package and Python module,
//! changing the generated API the apps use.

pub use embargo_types::{Certainty, Protocol, Verdict};

/// Transport of a connection, or `Dns` for a name lookup.
#[uniffi::remote(Enum)]
pub enum Protocol {
    /// A TCP connection.
    Tcp,
    /// A UDP flow.
    Udp,
    /// ICMP.
    Icmp,
    /// A DNS question (history and live events only).
    Dns,
}

/// Allowed or blocked.
#[uniffi::remote(Enum)]
pub enum Verdict {
    /// It may leave the device.
    Allow,
    /// It is stopped.
    Block,
}

/// How sure Embargo is of who an endpoint is.
#[uniffi::remote(Enum)]
pub enum Certainty {
    /// Nothing identifies the endpoint beyond its address.
    Unknown,
    /// Inferred: a name several names share, or an IP database range.
    Inferred,
    /// Stated by the app itself (DNS question, TLS SNI, HTTP Host).
    Certain,
}

/// What a per-app override or an allowlist entry is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum RuleTarget {
    /// A host name and all names below it.
    Name {
        /// Lower case, no trailing dot.
        name: String,
    },
    /// A network owner, matched case-insensitively as a word prefix ("Tencent").
    Owner {
        /// Owner name as shown in check results.
        owner: String,
    },
    /// An autonomous system number.
    Asn {
        /// The number, without "AS".
        asn: u32,
    },
    /// A country.
    Country {
        /// ISO 3166-1 alpha-2 code, e.g. "CN".
        code: String,
    },
}

impl RuleTarget {
    /// Validates and normalises into the policy's target.
    pub(crate) fn to_core(&self) -> Result<embargo_policy::Target, crate::EmbargoError> {
        use crate::EmbargoError::InvalidInput;
        Ok(match self {
            RuleTarget::Name { name } => {
                let n = name.trim().trim_end_matches('.').to_ascii_lowercase();
                if n.is_empty() || n.contains(char::is_whitespace) {
                    return Err(InvalidInput(format!("not a host name: {name:?}")));
                }
                embargo_policy::Target::Name(n)
            }
            RuleTarget::Owner { owner } => {
                let o = owner.trim();
                if o.is_empty() {
                    return Err(InvalidInput("empty owner name".into()));
                }
                embargo_policy::Target::Owner(o.to_owned())
            }
            RuleTarget::Asn { asn } => embargo_policy::Target::Asn(*asn),
            RuleTarget::Country { code } => {
                let c = code.trim().to_ascii_uppercase();
                if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
                    return Err(InvalidInput(format!(
                        "not an ISO 3166-1 alpha-2 country code: {code:?}"
                    )));
                }
                embargo_policy::Target::Country(c)
            }
        })
    }

    pub(crate) fn from_core(t: &embargo_policy::Target) -> RuleTarget {
        match t {
            embargo_policy::Target::Name(name) => RuleTarget::Name { name: name.clone() },
            embargo_policy::Target::Owner(owner) => RuleTarget::Owner {
                owner: owner.clone(),
            },
            embargo_policy::Target::Asn(asn) => RuleTarget::Asn { asn: *asn },
            embargo_policy::Target::Country(code) => RuleTarget::Country { code: code.clone() },
        }
    }
}
