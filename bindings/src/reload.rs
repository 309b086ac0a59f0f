//! Two processes, one state (iOS: the app changes rules, the extension runs the tunnel): the
//! process that did not make a change reads it again with [`Embargo::reload`].

use crate::embargo::Embargo;
use crate::EmbargoError;

#[uniffi::export]
impl Embargo {
    /// Reads the rules (lists, their settings, app rules, the embargo level) again from the
    /// storage directory, as another process left them, and decides with them from the next
    /// decision on, without restarting the tunnel. The configuration given to
    /// [`Embargo::new`] is not reread.
    pub fn reload(&self) -> Result<(), EmbargoError> {
        self.with_rules(|r| r.reload())
    }
}

#[cfg(test)]
mod tests {
    use crate::records::Verdict;
    use crate::rules::ListFormat;
    use crate::{Embargo, EmbargoConfig};

    #[test]
    fn a_change_made_by_another_process_applies_after_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().display().to_string();
        let extension = Embargo::new(EmbargoConfig::default(), path.clone()).unwrap();
        let app = Embargo::new(EmbargoConfig::default(), path).unwrap();
        app.set_list(
            "mine".into(),
            b"tracker.example.org\n".to_vec(),
            Some(ListFormat::Domains),
        )
        .unwrap();
        assert_eq!(
            app.check("tracker.example.org".into(), None)
                .unwrap()
                .verdict,
            Verdict::Block
        );
        assert_eq!(
            extension
                .check("tracker.example.org".into(), None)
                .unwrap()
                .verdict,
            Verdict::Allow,
            "not before the reload"
        );
        extension.reload().unwrap();
        assert_eq!(
            extension
                .check("tracker.example.org".into(), None)
                .unwrap()
                .verdict,
            Verdict::Block
        );
        app.set_list_enabled("mine".into(), false).unwrap();
        extension.reload().unwrap();
        assert_eq!(
            extension
                .check("tracker.example.org".into(), None)
                .unwrap()
                .verdict,
            Verdict::Allow
        );
    }
}
