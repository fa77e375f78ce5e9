//! Placeholder replaced by the generator port (in progress).
