//! The home of Embargo's cross-crate tests: tests that need more than one crate of the workspace
//! at once (a list through the real parser and compiler into the engine, the workspace's
//! layering), in `tests/tests/`. Each crate's own tests stay beside its code; the test harness
//! they share is `embargo-test-support` (core/test-support). This library is empty.
