//! Mechanism Y.
