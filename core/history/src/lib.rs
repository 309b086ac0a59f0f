//! History store (see ARCHITECTURE.md).
