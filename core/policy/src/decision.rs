//! The question the policy answers and the answer it gives.
//!
//! These types are the contract between the policy engine and its callers (the tunnel engine,
//! the command line, the bindings). They carry owned strings only where an answer leaves the
//! engine; a [`Query`] borrows, because it is built once per packet-path decision.

use std::net::IpAddr;
use std::sync::Arc;

use compact_str::CompactString;

use serde::{Deserialize, Serialize};

use crate::rules::Intent;
pub use embargo_types::{Certainty, Protocol, Verdict};

/// How the name in a query was learned. It sets how certain the name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NameSource {
    /// The app asked DNS for this name.
    DnsQuestion,
    /// The address was seen in a DNS answer for this name (possibly shared with other names).
    DnsAnswer,
    /// The TLS ClientHello named the server (SNI).
    TlsSni,
    /// The QUIC Initial's ClientHello named the server.
    QuicSni,
    /// The HTTP request's Host header.
    HttpHost,
    /// A person typed it (e.g. `embargo check NAME`).
    User,
}

/// One question to the policy: may this app reach this endpoint?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query<'a> {
    /// Opaque app id (Android package, executable path, `uid:N`); `None` when unknown.
    pub app: Option<&'a str>,
    /// The host name, lowercase without trailing dot, when one is known.
    pub name: Option<&'a str>,
    /// How `name` was learned; ignored when `name` is `None`.
    pub name_source: NameSource,
    /// How many distinct names the DNS answers mapped this address to (1 = unambiguous).
    /// Only meaningful with [`NameSource::DnsAnswer`].
    pub names_sharing_address: u32,
    /// The destination address, when the query is about a connection.
    pub addr: Option<IpAddr>,
    pub port: u16,
    pub protocol: Protocol,
    /// The DNS record type asked, for `$dnstype` rules (e.g. 1 = A, 28 = AAAA, 65 = HTTPS).
    pub dns_type: Option<u16>,
}

impl<'a> Query<'a> {
    /// A query about a host name alone (as `embargo check NAME` asks).
    pub fn name(name: &'a str) -> Self {
        Query {
            app: None,
            name: Some(name),
            name_source: NameSource::User,
            names_sharing_address: 1,
            addr: None,
            port: 0,
            protocol: Protocol::Tcp,
            dns_type: None,
        }
    }

    /// A query about an address alone.
    pub fn addr(addr: IpAddr) -> Self {
        Query {
            app: None,
            name: None,
            name_source: NameSource::User,
            names_sharing_address: 1,
            addr: Some(addr),
            port: 0,
            protocol: Protocol::Tcp,
            dns_type: None,
        }
    }

    pub fn with_app(mut self, app: &'a str) -> Self {
        self.app = Some(app);
        self
    }
}

/// Where a rule came from: list name (file name or `builtin`), 1-based line, and the rule text.
///
/// Built on every decision that a rule made, so neither field allocates in the common case:
/// the list name is shared with the rule set, and the rule text (usually the matched name,
/// 19 bytes on average in StevenBlack's list) is stored inline up to 24 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleRef {
    pub list: Arc<str>,
    pub line: u32,
    pub rule: CompactString,
}

/// Why a decision went the way it did. Exactly one reason per decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// No rule matched.
    NoMatch,
    /// Blocking is off for this app.
    AppBlockingOff,
    /// The global allowlist allowed it.
    Allowlisted { entry: String },
    /// A per-app override (allow or block) for this app.
    AppOverride { entry: String },
    /// The endpoint belongs to the app's own owner (first-party exception).
    FirstParty { owner: String },
    /// A name rule in a list (`@@` exceptions included, with `exception: true`).
    NameRule { rule: RuleRef, exception: bool },
    /// An address or CIDR rule.
    AddressRule { rule: RuleRef },
    /// A block by network owner (ASN or owner name).
    OwnerRule { rule: RuleRef },
    /// A block by country.
    CountryRule { rule: RuleRef },
}

/// Which data set said who owns an endpoint or where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AttributionSource {
    /// A tracker list that names the owner of a domain (DuckDuckGo, Disconnect, built-in).
    List { list: String },
    /// An IP database (ip-location-db, iptoasn), by file name.
    Database { database: String },
}

/// One fact about an endpoint (its owner, or its country) and who said so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribution {
    /// Owner display name (e.g. "ByteDance") or ISO 3166 country code (e.g. "CN").
    pub value: String,
    /// The autonomous system number, when the fact came from an ASN database.
    pub asn: Option<u32>,
    pub source: AttributionSource,
    pub certainty: Certainty,
}

/// The answer to a [`Query`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub verdict: Verdict,
    pub reason: Reason,
    /// The intent of the rule that decided (`None` when no list rule did: an override, the
    /// allowlist, the first-party exception, no match).
    #[serde(default)]
    pub intent: Option<Intent>,
    pub owner: Option<Attribution>,
    pub country: Option<Attribution>,
    /// How sure the name/address attribution behind this decision is.
    pub certainty: Certainty,
    /// The category the deciding rule's list gives it (Disconnect's `Advertising`, an Exodus
    /// tracker's `Analytics`), when it gives one. Looked up only when a decision is explained.
    #[serde(default)]
    pub category: Option<String>,
}

impl Decision {
    pub fn is_block(&self) -> bool {
        self.verdict == Verdict::Block
    }
}
