//! Plain enums shared by several parts of the API, with their conversions from the core types.

/// Transport of a connection, or `Dns` for a name lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
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

impl From<embargo_policy::Protocol> for Protocol {
    fn from(p: embargo_policy::Protocol) -> Self {
        match p {
            embargo_policy::Protocol::Tcp => Protocol::Tcp,
            embargo_policy::Protocol::Udp => Protocol::Udp,
            embargo_policy::Protocol::Icmp => Protocol::Icmp,
        }
    }
}

impl From<embargo_history::Protocol> for Protocol {
    fn from(p: embargo_history::Protocol) -> Self {
        match p {
            embargo_history::Protocol::Tcp => Protocol::Tcp,
            embargo_history::Protocol::Udp => Protocol::Udp,
            embargo_history::Protocol::Icmp => Protocol::Icmp,
            embargo_history::Protocol::Dns => Protocol::Dns,
        }
    }
}

impl From<Protocol> for embargo_history::Protocol {
    fn from(p: Protocol) -> Self {
        match p {
            Protocol::Tcp => embargo_history::Protocol::Tcp,
            Protocol::Udp => embargo_history::Protocol::Udp,
            Protocol::Icmp => embargo_history::Protocol::Icmp,
            Protocol::Dns => embargo_history::Protocol::Dns,
        }
    }
}

/// Allowed or blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum Verdict {
    /// It may leave the device.
    Allow,
    /// It is stopped.
    Block,
}

impl From<embargo_policy::Verdict> for Verdict {
    fn from(v: embargo_policy::Verdict) -> Self {
        match v {
            embargo_policy::Verdict::Allow => Verdict::Allow,
            embargo_policy::Verdict::Block => Verdict::Block,
        }
    }
}

impl From<embargo_history::Decision> for Verdict {
    fn from(v: embargo_history::Decision) -> Self {
        match v {
            embargo_history::Decision::Allow => Verdict::Allow,
            embargo_history::Decision::Block => Verdict::Block,
        }
    }
}

impl From<Verdict> for embargo_history::Decision {
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Allow => embargo_history::Decision::Allow,
            Verdict::Block => embargo_history::Decision::Block,
        }
    }
}

/// How sure Embargo is of who an endpoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, uniffi::Enum)]
pub enum Certainty {
    /// Nothing identifies the endpoint beyond its address.
    Unknown,
    /// Inferred: a name several names share, or an IP database range.
    Inferred,
    /// Stated by the app itself (DNS question, TLS SNI, HTTP Host).
    Certain,
}

impl From<embargo_policy::Certainty> for Certainty {
    fn from(c: embargo_policy::Certainty) -> Self {
        match c {
            embargo_policy::Certainty::Unknown => Certainty::Unknown,
            embargo_policy::Certainty::Inferred => Certainty::Inferred,
            embargo_policy::Certainty::Certain => Certainty::Certain,
        }
    }
}

impl From<embargo_history::Certainty> for Certainty {
    fn from(c: embargo_history::Certainty) -> Self {
        match c {
            embargo_history::Certainty::Unknown => Certainty::Unknown,
            embargo_history::Certainty::Inferred => Certainty::Inferred,
            embargo_history::Certainty::Certain => Certainty::Certain,
        }
    }
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
