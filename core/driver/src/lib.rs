//! IO driver for the tunnel engine (see ARCHITECTURE.md).
