//! The words every layer shares, declared once: what a flow is ([`Protocol`]), what was done
//! with it ([`Verdict`]) and how sure the attribution of its endpoint is ([`Certainty`]).
//!
//! The lowest crate of the workspace: the policy, the history and everything above use these
//! types as they are. The FFI exposes them with UniFFI's remote-type mirrors
//! (`bindings/src/records.rs`), so this crate needs no UniFFI and the generated API keeps its
//! one namespace. Names as text (`as_str`, serde) are lower case and part of the history's
//! export and JSON formats: they never change.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Transport of a connection attempt, or `Dns` for a name lookup answered (or refused) by the
/// engine's resolver. Flows are only ever `Tcp`, `Udp` or `Icmp`; `Dns` names history rows and
/// live events about DNS questions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// A TCP connection attempt (SYN).
    Tcp,
    /// A UDP flow (first datagram).
    Udp,
    /// An ICMP echo or other ICMP flow.
    Icmp,
    /// A DNS question.
    Dns,
}

/// What was done with a connection attempt or a DNS question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// It may leave the device.
    Allow,
    /// It is stopped (DNS answered with nothing, connection reset or dropped).
    Block,
}

/// How sure Embargo is that the endpoint is who it says (its name, owner and country).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Certainty {
    /// Nothing identifies the endpoint beyond its address.
    Unknown,
    /// Inferred: a name from a DNS answer that several names share, or a database range.
    Inferred,
    /// Stated by the app itself: DNS question, TLS SNI, HTTP Host, or a single-name DNS answer.
    Certain,
}

macro_rules! named_enum {
    ($ty:ident { $($variant:ident = $text:literal,)+ }) => {
        impl $ty {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant,)+];

            /// Lower-case name, as in exports, JSON and CLI output.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $text,)+ }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named_enum!(Protocol { Tcp = "tcp", Udp = "udp", Icmp = "icmp", Dns = "dns", });
named_enum!(Verdict { Allow = "allow", Block = "block", });
named_enum!(Certainty { Unknown = "unknown", Inferred = "inferred", Certain = "certain", });

#[cfg(test)]
mod tests {
    use super::*;

    /// `as_str` and serde must agree: both are the history's export format.
    #[test]
    fn text_names_match_serde_names() {
        fn check<T: Serialize + fmt::Display>(all: &[T]) {
            for v in all {
                assert_eq!(serde_json::to_string(v).unwrap(), format!("\"{v}\""));
            }
        }
        check(Protocol::ALL);
        check(Verdict::ALL);
        check(Certainty::ALL);
    }
}
