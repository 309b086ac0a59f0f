//! DNS (placeholder, being written).
