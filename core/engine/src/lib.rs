//! Sans-IO tunnel engine (see ARCHITECTURE.md).
