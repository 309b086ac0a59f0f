//! Well-known lists a person can add by name (`embargo lists add hagezi-pro`, the apps'
//! list screens). Only lists whose licence lets anyone download and use them are here;
//! nothing is bundled: each is downloaded from its publisher when added, and kept current
//! like any URL list ([`crate::fetch`]).

use serde::Serialize;

/// One list of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CatalogueEntry {
    /// The name it is added under (a valid list name).
    pub name: &'static str,
    /// Where it is downloaded from.
    pub url: &'static str,
    /// Its format (`embargo_policy::parse::Format::from_name`).
    pub format: &'static str,
    /// Its licence, as the publisher states it.
    pub licence: &'static str,
    /// What it blocks.
    pub blocks: &'static str,
}

/// The catalogue. Licences as each repository's LICENSE file states them (docs/decisions.md
/// says which were checked); the DuckDuckGo and Disconnect lists are non-commercial
/// (CC BY-NC-SA 4.0): a person may download them for their own device, Embargo never
/// bundles them.
pub const CATALOGUE: &[CatalogueEntry] = &[
    CatalogueEntry {
        name: "stevenblack-hosts",
        url: "https://raw.githubusercontent.com/StevenBlack/hosts/master/hosts",
        format: "hosts",
        licence: "MIT",
        blocks: "ads and malware (unified hosts, exact names)",
    },
    CatalogueEntry {
        name: "hagezi-pro",
        url: "https://raw.githubusercontent.com/hagezi/dns-blocklists/main/adblock/pro.txt",
        format: "adblock",
        licence: "GPL-3.0",
        blocks: "ads, tracking, telemetry, phishing, malware (names and their subdomains)",
    },
    CatalogueEntry {
        name: "hagezi-native-tiktok",
        url: "https://raw.githubusercontent.com/hagezi/dns-blocklists/main/adblock/native.tiktok.txt",
        format: "adblock",
        licence: "GPL-3.0",
        blocks: "TikTok's native telemetry",
    },
    CatalogueEntry {
        name: "oisd-small",
        url: "https://small.oisd.nl/",
        format: "adblock",
        licence: "GPL-3.0",
        blocks: "ads, tracking, malware; tuned to break nothing",
    },
    CatalogueEntry {
        name: "adguard-dns",
        url: "https://adguardteam.github.io/AdGuardSDNSFilter/Filters/filter.txt",
        format: "adblock",
        licence: "MIT",
        blocks: "ads and tracking (AdGuard DNS filter)",
    },
    CatalogueEntry {
        name: "ddg-app-trackers",
        url: "https://raw.githubusercontent.com/duckduckgo/tracker-blocklists/main/app/android-tds.json",
        format: "ddg-app",
        licence: "CC BY-NC-SA 4.0 (non-commercial)",
        blocks: "third-party trackers in apps, with their owners (DuckDuckGo App Tracking Protection)",
    },
    CatalogueEntry {
        name: "disconnect",
        url: "https://raw.githubusercontent.com/disconnectme/disconnect-tracking-protection/master/services.json",
        format: "disconnect",
        licence: "CC BY-NC-SA 4.0 (non-commercial)",
        blocks: "trackers by category (advertising, analytics, social), with their owners",
    },
];

/// The catalogue entry called `name`.
pub fn find(name: &str) -> Option<&'static CatalogueEntry> {
    CATALOGUE.iter().find(|e| e.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use embargo_policy::parse::Format;

    #[test]
    fn every_entry_names_a_known_format_a_valid_name_and_an_https_url() {
        for e in CATALOGUE {
            assert!(Format::from_name(e.format).is_some(), "{}", e.name);
            assert!(e.url.starts_with("https://"), "{}", e.name);
            assert!(
                e.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c)),
                "{}",
                e.name
            );
            assert_eq!(find(e.name), Some(e));
        }
    }
}
