//! Per-app settings a person chooses: blocking on or off per app, per-app overrides, the defaults
//! for new and for system apps, and the global allowlist.
//!
//! Shells persist [`AppRules`] as JSON (serde); the policy only reads it. An app is an opaque id:
//! an Android package, a Linux executable path or `uid:N`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::rules::Action;

/// What an override or allowlist entry is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Target {
    /// A name and all its subdomains (lowercase, no trailing dot).
    Name(String),
    /// An owner, matched case-insensitively as a word-prefix of the owner or AS organisation
    /// (`"Tencent"` matches "Shenzhen Tencent Computer Systems Company Limited").
    Owner(String),
    /// An autonomous system number.
    Asn(u32),
    /// An ISO 3166-1 alpha-2 country code (uppercase).
    Country(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Name(n) => write!(f, "name {n}"),
            Target::Owner(o) => write!(f, "owner {o}"),
            Target::Asn(a) => write!(f, "AS{a}"),
            Target::Country(c) => write!(f, "country {c}"),
        }
    }
}

impl Target {
    /// Reads a target as people write it: `AS45090`, `owner: ByteDance` (or `owner:ByteDance`),
    /// `country: CN`, or a host name (which covers its subdomains).
    pub fn parse(text: &str) -> Result<Target, String> {
        let text = text.trim();
        let field = |prefix: &str| {
            text.get(..prefix.len())
                .filter(|p| p.eq_ignore_ascii_case(prefix))
                .map(|_| text[prefix.len()..].trim())
        };
        if let Some(owner) = field("owner:") {
            if owner.is_empty() || owner.chars().any(char::is_control) {
                return Err(format!(
                    "{text:?}: an owner name is needed after \"owner:\""
                ));
            }
            return Ok(Target::Owner(owner.to_owned()));
        }
        if let Some(code) = field("country:") {
            if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(format!(
                    "{text:?}: a country is a two-letter ISO 3166-1 code, such as CN"
                ));
            }
            return Ok(Target::Country(code.to_ascii_uppercase()));
        }
        if let Some(digits) = field("as") {
            if let Ok(asn) = digits.parse::<u32>() {
                return Ok(Target::Asn(asn));
            }
        }
        match crate::parse::normalize_name(text) {
            Ok(name) => Ok(Target::Name(name)),
            Err(e) => Err(format!(
                "{text:?}: not a host name, ASnnn, owner: NAME or country: CC ({e})"
            )),
        }
    }
}

/// One per-app override: allow or block a target for this app alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Override {
    /// What the override is about.
    pub target: Target,
    /// Allow or block it for this app.
    pub action: Action,
}

/// Settings for one app.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppSettings {
    /// Blocking on or off for this app; `None` = the default for its kind (new or system).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocking: Option<bool>,
    /// A system app (its default is [`AppRules::system_app_blocking`]).
    #[serde(default)]
    pub system: bool,
    /// Overrides for this app alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<Override>,
}

/// Everything a person decided about apps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRules {
    /// Settings per app id.
    #[serde(default)]
    pub apps: BTreeMap<String, AppSettings>,
    /// Blocking for apps with no settings (and for traffic whose app is unknown).
    #[serde(default = "yes")]
    pub new_app_blocking: bool,
    /// Blocking for system apps without their own setting. Off by default: blocking the system's
    /// own services breaks updates and connectivity checks more often than it stops tracking.
    #[serde(default)]
    pub system_app_blocking: bool,
    /// Allowed for every app, over every list (but not over a per-app block override).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowlist: Vec<Target>,
}

fn yes() -> bool {
    true
}

impl Default for AppRules {
    fn default() -> Self {
        AppRules {
            apps: BTreeMap::new(),
            new_app_blocking: true,
            system_app_blocking: false,
            allowlist: Vec::new(),
        }
    }
}

impl AppRules {
    /// Whether blocking applies to this app (unknown app = a new app).
    pub fn blocking_enabled(&self, app: Option<&str>) -> bool {
        match app.and_then(|a| self.apps.get(a)) {
            Some(s) => s.blocking.unwrap_or(if s.system {
                self.system_app_blocking
            } else {
                self.new_app_blocking
            }),
            None => self.new_app_blocking,
        }
    }

    /// The settings of one app, if it has any.
    pub fn app(&self, app: &str) -> Option<&AppSettings> {
        self.apps.get(app)
    }

    /// The settings of one app, created with defaults if missing.
    pub fn app_mut(&mut self, app: &str) -> &mut AppSettings {
        self.apps.entry(app.to_owned()).or_default()
    }

    /// Sets blocking on or off for one app.
    pub fn set_blocking(&mut self, app: &str, on: bool) {
        self.app_mut(app).blocking = Some(on);
    }

    /// Adds a per-app override.
    pub fn add_override(&mut self, app: &str, target: Target, action: Action) {
        self.app_mut(app)
            .overrides
            .push(Override { target, action });
    }

    /// Sets the app's override of this target (replacing an earlier one of the same target).
    pub fn set_override(&mut self, app: &str, target: Target, action: Action) {
        let overrides = &mut self.app_mut(app).overrides;
        overrides.retain(|o| o.target != target);
        overrides.push(Override { target, action });
    }

    /// Removes the app's override of this target; whether there was one.
    pub fn remove_override(&mut self, app: &str, target: &Target) -> bool {
        let Some(settings) = self.apps.get_mut(app) else {
            return false;
        };
        let before = settings.overrides.len();
        settings.overrides.retain(|o| &o.target != target);
        settings.overrides.len() != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_for_new_and_system_apps() {
        let mut rules = AppRules::default();
        assert!(rules.blocking_enabled(None));
        assert!(rules.blocking_enabled(Some("com.example")));
        rules.app_mut("android").system = true;
        assert!(!rules.blocking_enabled(Some("android")));
        rules.system_app_blocking = true;
        assert!(rules.blocking_enabled(Some("android")));
        rules.set_blocking("android", false);
        assert!(!rules.blocking_enabled(Some("android")));
        rules.new_app_blocking = false;
        assert!(!rules.blocking_enabled(Some("com.other")));
    }

    #[test]
    fn targets_parse_as_people_write_them() {
        assert_eq!(Target::parse("AS45090"), Ok(Target::Asn(45090)));
        assert_eq!(Target::parse("as45090"), Ok(Target::Asn(45090)));
        assert_eq!(
            Target::parse("owner: ByteDance"),
            Ok(Target::Owner("ByteDance".into()))
        );
        assert_eq!(
            Target::parse("Country:cn"),
            Ok(Target::Country("CN".into()))
        );
        assert_eq!(
            Target::parse("Log.TikTokV.com."),
            Ok(Target::Name("log.tiktokv.com".into()))
        );
        // A name that starts with "as" is a name.
        assert_eq!(
            Target::parse("assets.example"),
            Ok(Target::Name("assets.example".into()))
        );
        for bad in ["country: CHN", "owner:", "not a name", ""] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn overrides_replace_and_remove_by_target() {
        let mut rules = AppRules::default();
        let t = Target::Name("log.tiktokv.com".into());
        rules.set_override("app", t.clone(), Action::Allow);
        rules.set_override("app", t.clone(), Action::Block);
        assert_eq!(rules.app("app").unwrap().overrides.len(), 1);
        assert_eq!(rules.app("app").unwrap().overrides[0].action, Action::Block);
        assert!(rules.remove_override("app", &t));
        assert!(!rules.remove_override("app", &t));
        assert!(!rules.remove_override("other", &t));
    }

    #[test]
    fn json_roundtrip() {
        let mut rules = AppRules::default();
        rules.add_override(
            "com.zhiliaoapp.musically",
            Target::Owner("ByteDance".into()),
            Action::Allow,
        );
        rules.allowlist.push(Target::Name("example.org".into()));
        let json = serde_json::to_string(&rules).unwrap();
        let back: AppRules = serde_json::from_str(&json).unwrap();
        assert_eq!(back, rules);
        let empty: AppRules = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, AppRules::default());
    }
}
