//! UniFFI bindings (see ARCHITECTURE.md).
