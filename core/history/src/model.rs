//! Plain record types: what the shells hand to the store and what queries return.
//!
//! These types deliberately do not depend on other Embargo crates: the history store is a leaf
//! library, so the application layer (`embargo-app`) converts engine events into [`Event`]. Every enum has a stable
//! integer code stored in SQLite; the codes are part of the on-disk format and never change
//! meaning (a new variant gets a new code and a migration if needed).

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch (UTC). Plain integers cross FFI and SQLite without loss.
pub type Millis = i64;

pub use embargo_types::{Certainty, Protocol, Verdict};

/// A stored enum code that this version does not know (a newer writer, or a damaged row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownCode {
    /// Which column held the code.
    pub column: &'static str,
    /// The code found.
    pub code: i64,
}

impl fmt::Display for UnknownCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown {} code {}", self.column, self.code)
    }
}

/// The stable integer each shared enum is stored as in SQLite (part of the file format).
pub trait Coded: Sized + Copy {
    /// The code stored for this value.
    fn code(self) -> i64;
    /// Inverse of [`Coded::code`].
    fn from_code(code: i64) -> Result<Self, UnknownCode>;
}

macro_rules! coded_enum {
    ($ty:ident, $column:literal, { $($variant:ident = $code:literal,)+ }) => {
        impl Coded for $ty {
            fn code(self) -> i64 {
                match self { $($ty::$variant => $code,)+ }
            }

            fn from_code(code: i64) -> Result<Self, UnknownCode> {
                match code {
                    $($code => Ok($ty::$variant),)+
                    _ => Err(UnknownCode { column: $column, code }),
                }
            }
        }
    };
}

coded_enum!(Protocol, "protocol", { Tcp = 0, Udp = 1, Icmp = 2, Dns = 3, });
coded_enum!(Verdict, "decision", { Allow = 0, Block = 1, });
coded_enum!(Certainty, "certainty", { Unknown = 0, Inferred = 1, Certain = 2, });

/// One thing an app tried to do, as the shell hands it to [`crate::Recorder::record`].
///
/// Only the host name is kept, never a URL path, query or payload byte: the store cannot leak
/// what it never receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// When it happened.
    pub time_ms: Millis,
    /// The app (package name, bundle id or executable), if the platform told us.
    pub app: Option<String>,
    /// Host name asked for or seen (DNS question, SNI, HTTP Host), lower case, no trailing dot.
    pub name: Option<String>,
    /// Destination address, if any (a DNS question has none).
    pub addr: Option<IpAddr>,
    /// Destination port (0 when not applicable).
    pub port: u16,
    /// Transport.
    pub protocol: Protocol,
    /// What the engine did (stored and exported as `decision`, the file formats' word).
    #[serde(rename = "decision")]
    pub verdict: Verdict,
    /// Text of the rule that decided, if a rule did.
    pub rule: Option<String>,
    /// List the rule came from (file name or `builtin`).
    pub list: Option<String>,
    /// 1-based line of the rule in its list.
    pub line: Option<u32>,
    /// Network owner (company) of the endpoint, e.g. `ByteDance`.
    pub owner: Option<String>,
    /// Database that named the owner (e.g. `ipdb-asn 2026-11`).
    pub owner_source: Option<String>,
    /// ISO 3166-1 alpha-2 country of the endpoint.
    pub country: Option<String>,
    /// Database that named the country.
    pub country_source: Option<String>,
    /// How sure the attribution is.
    pub certainty: Certainty,
    /// The category the deciding rule's list gives it (Disconnect's `Advertising`, an Exodus
    /// tracker's `Analytics`), if it gives one.
    #[serde(default)]
    pub category: Option<String>,
}

impl Event {
    /// A minimal event: everything optional left empty. Handy in tests and for DNS-only events.
    pub fn new(time_ms: Millis, protocol: Protocol, verdict: Verdict) -> Self {
        Event {
            time_ms,
            app: None,
            name: None,
            addr: None,
            port: 0,
            protocol,
            verdict,
            rule: None,
            list: None,
            line: None,
            owner: None,
            owner_source: None,
            country: None,
            country_source: None,
            certainty: Certainty::Unknown,
            category: None,
        }
    }
}

/// A stored row: one event, or several that coalesced (same app, name, decision within the
/// coalescing window). Fields other than the times and `count` describe the most recent event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Row id; with `last_seen_ms` it forms the paging cursor.
    pub id: i64,
    /// Time of the first event in the row.
    pub first_seen_ms: Millis,
    /// Time of the latest event in the row.
    pub last_seen_ms: Millis,
    /// How many events coalesced into this row (at least 1).
    pub count: u64,
    /// See [`Event::app`].
    pub app: Option<String>,
    /// See [`Event::name`].
    pub name: Option<String>,
    /// See [`Event::addr`].
    pub addr: Option<IpAddr>,
    /// See [`Event::port`].
    pub port: u16,
    /// See [`Event::protocol`].
    pub protocol: Protocol,
    /// See [`Event::verdict`].
    #[serde(rename = "decision")]
    pub verdict: Verdict,
    /// See [`Event::rule`].
    pub rule: Option<String>,
    /// See [`Event::list`].
    pub list: Option<String>,
    /// See [`Event::line`].
    pub line: Option<u32>,
    /// See [`Event::owner`].
    pub owner: Option<String>,
    /// See [`Event::owner_source`].
    pub owner_source: Option<String>,
    /// See [`Event::country`].
    pub country: Option<String>,
    /// See [`Event::country_source`].
    pub country_source: Option<String>,
    /// See [`Event::certainty`].
    pub certainty: Certainty,
    /// See [`Event::category`].
    #[serde(default)]
    pub category: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_codes_are_errors() {
        for p in [Protocol::Tcp, Protocol::Udp, Protocol::Icmp, Protocol::Dns] {
            assert_eq!(Protocol::from_code(p.code()), Ok(p));
        }
        for d in [Verdict::Allow, Verdict::Block] {
            assert_eq!(Verdict::from_code(d.code()), Ok(d));
        }
        for c in [Certainty::Unknown, Certainty::Inferred, Certainty::Certain] {
            assert_eq!(Certainty::from_code(c.code()), Ok(c));
        }
        let err = Verdict::from_code(7).unwrap_err();
        assert_eq!(err.to_string(), "unknown decision code 7");
    }
}
