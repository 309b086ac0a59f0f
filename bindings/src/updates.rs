//! Lists that keep themselves current, for the apps: the catalogue of well-known lists,
//! lists added by URL, and their updates (embargo_app::fetch: conditional requests, a daily
//! schedule, a refused download keeps the last good copy). The core says how; the app says
//! when: Android's WorkManager or iOS's background tasks call [`Embargo::update_due_lists`]
//! on an unmetered network. Downloads run outside the rules lock, so the tunnel and the
//! settings screens are not held up by them; a changed list is put in force at once.

use std::sync::Arc;

use embargo_app::fetch::{self, AddRefused, Outcome, Which};
use embargo_app::store::{now_ms, ListSource};
use embargo_policy::parse::Format;

use crate::embargo::Embargo;
use crate::rules::{ListFormat, ListInfo};
use crate::EmbargoError;

/// Told how a long download goes (a notification's progress bar).
#[uniffi::export(foreign)]
pub trait DownloadProgress: Send + Sync {
    /// `done` bytes of the list `list` received, of `total` when the server said.
    fn progress(&self, list: String, done: u64, total: Option<u64>);
}

/// A well-known list [`Embargo::add_catalogue_list`] can add by name.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CatalogueList {
    /// The name it is added under.
    pub name: String,
    /// Where it is downloaded from.
    pub url: String,
    /// Its format.
    pub format: ListFormat,
    /// Its licence, as the publisher states it.
    pub licence: String,
    /// What it blocks.
    pub blocks: String,
}

/// What one check of one list came to.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum ListUpdateResult {
    /// A new version is in force.
    Updated,
    /// The server said it had not changed.
    Unchanged,
    /// The new version was refused; the last good one stays in force.
    Refused {
        /// Why (HTTP status, truncated, not the list's format, far fewer rules...).
        reason: String,
    },
}

/// One list's check.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ListUpdate {
    /// The list.
    pub name: String,
    /// What came of it.
    pub result: ListUpdateResult,
}

/// [`DownloadProgress`] as the core's progress.
struct Forward(Option<Arc<dyn DownloadProgress>>);

impl fetch::Progress for Forward {
    fn progress(&self, list: &str, done: u64, total: Option<u64>) {
        if let Some(p) = &self.0 {
            p.progress(list.to_owned(), done, total);
        }
    }
}

fn result(outcome: Outcome) -> ListUpdateResult {
    match outcome {
        Outcome::Updated => ListUpdateResult::Updated,
        Outcome::Unchanged => ListUpdateResult::Unchanged,
        Outcome::Refused(reason) => ListUpdateResult::Refused { reason },
    }
}

impl Embargo {
    /// Runs `which`'s updates outside the rules lock, then puts the changes in force.
    fn run_updates(
        &self,
        which: Which<'_>,
        force: bool,
        progress: Option<Arc<dyn DownloadProgress>>,
    ) -> Result<Vec<ListUpdate>, EmbargoError> {
        let store = self.with_rules(|r| {
            r.changeable()?;
            Ok(r.store().clone())
        })?;
        let outcomes = fetch::update_lists(&store, which, force, &Forward(progress))
            .map_err(|e| EmbargoError::List(format!("{e:#}")))?;
        if outcomes.iter().any(|(_, o)| *o == Outcome::Updated) {
            self.with_rules(|r| r.reload())?;
        }
        Ok(outcomes
            .into_iter()
            .map(|(name, o)| ListUpdate {
                name,
                result: result(o),
            })
            .collect())
    }
}

#[uniffi::export]
impl Embargo {
    /// The well-known lists, with their licences and what they block.
    pub fn list_catalogue(&self) -> Vec<CatalogueList> {
        embargo_app::catalogue::CATALOGUE
            .iter()
            .map(|e| CatalogueList {
                name: e.name.into(),
                url: e.url.into(),
                format: ListFormat::from_core(
                    Format::from_name(e.format).expect("catalogue formats are known"),
                ),
                licence: e.licence.into(),
                blocks: e.blocks.into(),
            })
            .collect()
    }

    /// Adds the catalogue's list `name`: downloads it now, then keeps it current.
    #[uniffi::method(default(progress = None))]
    pub fn add_catalogue_list(
        &self,
        name: String,
        progress: Option<Arc<dyn DownloadProgress>>,
    ) -> Result<ListInfo, EmbargoError> {
        let known = embargo_app::catalogue::find(&name).ok_or_else(|| {
            EmbargoError::InvalidInput(format!("{name:?} is not in the list catalogue"))
        })?;
        let format = Format::from_name(known.format).map(ListFormat::from_core);
        self.add_url_list(name, known.url.into(), format, None, progress)
    }

    /// Adds a list downloaded from `url` (http or https): downloads it now (an error, and
    /// nothing added, when the download is refused), then keeps it current, checked every
    /// `interval_secs` (daily by default) when [`Embargo::update_due_lists`] is called.
    #[uniffi::method(default(format = None, interval_secs = None, progress = None))]
    pub fn add_url_list(
        &self,
        name: String,
        url: String,
        format: Option<ListFormat>,
        interval_secs: Option<u64>,
        progress: Option<Arc<dyn DownloadProgress>>,
    ) -> Result<ListInfo, EmbargoError> {
        let name = name.trim().to_owned();
        if name.is_empty() || name == embargo_policy::BUILTIN_LIST_NAME {
            return Err(EmbargoError::InvalidInput(format!(
                "{name:?}: a list needs a name of its own"
            )));
        }
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(EmbargoError::InvalidInput(format!(
                "{url:?}: a list URL starts with http:// or https://"
            )));
        }
        let store = self.with_rules(|r| {
            r.changeable()?;
            Ok(r.store().clone())
        })?;
        let format = format.map(|f| f.to_core().name().to_owned());
        let added = embargo_app::fetch::add_list(
            &store,
            name.clone(),
            ListSource::Url(url),
            format,
            interval_secs,
            &Forward(progress),
        )
        .map_err(|e| EmbargoError::Storage(format!("{e:#}")))?;
        match added {
            Ok(_) => {}
            Err(AddRefused::NameTaken(name)) => {
                return Err(EmbargoError::InvalidInput(format!(
                    "a list named {name:?} exists already"
                )))
            }
            Err(AddRefused::Copy(why)) => return Err(EmbargoError::List(why)),
        }
        self.with_rules(|r| {
            r.reload()?;
            r.lists()?
                .into_iter()
                .find(|l| l.name == name)
                .ok_or_else(|| EmbargoError::Internal("the list just added is gone".into()))
        })
    }

    /// The lists whose interval has passed since their last check.
    pub fn lists_due(&self) -> Result<Vec<String>, EmbargoError> {
        let store = self.with_rules(|r| Ok(r.store().clone()))?;
        fetch::due(&store, now_ms()).map_err(|e| EmbargoError::Storage(format!("{e:#}")))
    }

    /// Checks the lists that are due (conditionally: an unchanged list costs no download)
    /// and puts what changed in force. Call it when the platform says the network is
    /// unmetered; a refused download keeps the last good copy and says why in
    /// [`Embargo::lists`]'s `update_refused`.
    #[uniffi::method(default(progress = None))]
    pub fn update_due_lists(
        &self,
        progress: Option<Arc<dyn DownloadProgress>>,
    ) -> Result<Vec<ListUpdate>, EmbargoError> {
        self.run_updates(Which::Due, false, progress)
    }

    /// Checks the lists named (all downloaded lists when none is), due or not; `force`
    /// downloads whole without asking whether they changed.
    #[uniffi::method(default(progress = None))]
    pub fn update_lists(
        &self,
        names: Vec<String>,
        force: bool,
        progress: Option<Arc<dyn DownloadProgress>>,
    ) -> Result<Vec<ListUpdate>, EmbargoError> {
        if names.is_empty() {
            self.run_updates(Which::All, force, progress)
        } else {
            self.run_updates(Which::Named(&names), force, progress)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EmbargoConfig;
    use crate::records::Verdict;
    use std::io::{Read, Write};
    use std::sync::Mutex;

    /// A real HTTP server on loopback answering every request with the current `(status, body)`.
    fn serve(answer: Arc<Mutex<(&'static str, String)>>) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let mut s = conn.unwrap();
                let _ = s.read(&mut [0u8; 4096]);
                let (status, body) = answer.lock().unwrap().clone();
                let _ = write!(
                    s,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        format!("http://{addr}/list.txt")
    }

    struct Count(Mutex<u64>);
    impl DownloadProgress for Count {
        fn progress(&self, _list: String, done: u64, _total: Option<u64>) {
            *self.0.lock().unwrap() = done;
        }
    }

    #[test]
    fn a_url_list_is_added_updated_in_force_and_a_broken_update_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = Embargo::new(EmbargoConfig::default(), dir.path().display().to_string()).unwrap();
        let answer = Arc::new(Mutex::new(("200 OK", "one.test\n".to_string())));
        let url = serve(Arc::clone(&answer));
        let count = Arc::new(Count(Mutex::new(0)));
        let info = e
            .add_url_list(
                "mine".into(),
                url,
                Some(ListFormat::DomainsSubtree),
                Some(1),
                Some(count.clone()),
            )
            .unwrap();
        assert_eq!(info.accepted, 1);
        assert_eq!(info.interval_secs, 1);
        assert_eq!(*count.0.lock().unwrap(), 9, "progress saw every byte");
        let verdict = |name: &str| e.check(name.into(), None).unwrap().verdict;
        assert_eq!(verdict("one.test"), Verdict::Block);
        assert!(e.lists_due().unwrap().is_empty());

        *answer.lock().unwrap() = ("200 OK", "one.test\ntwo.test\n".into());
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert_eq!(e.lists_due().unwrap(), vec!["mine".to_string()]);
        let done = e.update_due_lists(None).unwrap();
        assert_eq!(done[0].result, ListUpdateResult::Updated);
        assert_eq!(verdict("two.test"), Verdict::Block);

        *answer.lock().unwrap() = ("503 Service Unavailable", "busy".into());
        let done = e.update_lists(vec![], false, None).unwrap();
        let ListUpdateResult::Refused { reason } = &done[0].result else {
            panic!("{done:?}");
        };
        assert!(reason.contains("HTTP 503"), "{reason}");
        assert_eq!(
            verdict("two.test"),
            Verdict::Block,
            "the last good copy stays"
        );
        let info = &e.lists().unwrap()[0];
        assert_eq!(info.update_refused.as_deref(), Some(reason.as_str()));
        assert_eq!(info.accepted, 2);

        assert!(matches!(
            e.add_catalogue_list("no-such-list".into(), None),
            Err(EmbargoError::InvalidInput(_))
        ));
        assert!(e
            .list_catalogue()
            .iter()
            .any(|c| c.name == "stevenblack-hosts"));
    }
}
