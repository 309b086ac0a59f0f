//! The one error type the apps see, and the guard that keeps panics on the Rust side.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Everything that can go wrong behind the API. Flat: the apps get the variant and a message
/// written for a person (it names the file, line or value at fault), nothing to parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum EmbargoError {
    /// A value the caller passed is not acceptable (bad address, empty name, unknown list).
    #[error("{0}")]
    InvalidInput(String),
    /// A rule list could not be read or parsed at all (errors per line are in the load report).
    #[error("{0}")]
    List(String),
    /// The storage directory or a file in it could not be read or written.
    #[error("storage: {0}")]
    Storage(String),
    /// The history database failed.
    #[error("history: {0}")]
    History(String),
    /// The tunnel could not start or failed while running.
    #[error("tunnel: {0}")]
    Tunnel(String),
    /// The call is not possible in the current state (e.g. starting twice).
    #[error("{0}")]
    State(String),
    /// A platform hook (protect, app owner, packet sink) failed.
    #[error("platform hook: {0}")]
    Hook(String),
    /// A bug in Embargo: a panic caught at the API boundary. The app keeps running; the
    /// message is for a bug report.
    #[error("internal error (please report): {0}")]
    Internal(String),
}

impl From<embargo_history::HistoryError> for EmbargoError {
    fn from(e: embargo_history::HistoryError) -> Self {
        EmbargoError::History(e.to_string())
    }
}

/// What a foreign hook returns when it fails. A hook written in Kotlin or Swift throws
/// `HookException.Failed`; any other exception it throws arrives as `Failed` too (through
/// [`uniffi::UnexpectedUniFFICallbackError`]) instead of crashing the process.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum HookError {
    /// The hook could not do what was asked.
    #[error("{reason}")]
    Failed {
        /// Why, for the log.
        reason: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for HookError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        HookError::Failed {
            reason: format!("unexpected error in a platform hook: {}", e.reason),
        }
    }
}

/// Runs an API call body, turning a panic into [`EmbargoError::Internal`]. Every exported
/// function and method goes through it: a panic must never unwind into Kotlin or Swift (JNA
/// and the Swift runtime cannot catch it) and must not take the app down.
pub(crate) fn guard<T>(body: impl FnOnce() -> Result<T, EmbargoError>) -> Result<T, EmbargoError> {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(result) => result,
        Err(payload) => {
            let message = panic_message(payload.as_ref());
            log::error!("panic caught at the API boundary: {message}");
            Err(EmbargoError::Internal(message))
        }
    }
}

/// The text of a panic payload (`panic!` with a literal or a formatted message).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-text payload".to_owned()
    }
}

/// Locks a mutex, recovering the data if a caught panic poisoned it (every critical section
/// here leaves the data consistent at each step, so the data is still valid).
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_turns_a_panic_into_internal() {
        let r: Result<(), EmbargoError> = guard(|| panic!("boom {}", 42));
        assert_eq!(r, Err(EmbargoError::Internal("boom 42".into())));
        let ok = guard(|| Ok(7));
        assert_eq!(ok, Ok(7));
    }
}
