//! Mechanism X.
