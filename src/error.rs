//! How a command fails, and the exit code each failure means: 2 for bad usage, settings or input
//! (the message says what to fix), 130 when interrupted. Differences found by `verify` are not an
//! error but an [`Outcome`](crate::Outcome) with exit code 1.

use std::fmt;

/// A failure to report to the user: what went wrong and, where we know it, what to do.
#[derive(Debug)]
pub enum Error {
    /// Bad usage, settings or input: exit code 2.
    Usage { message: String, hint: Option<String> },
    /// Ctrl-C or SIGTERM: exit code 130.
    Interrupted,
}

impl Error {
    /// Bad usage, settings or input.
    pub fn usage(message: impl Into<String>) -> Self {
        Self::Usage { message: message.into(), hint: None }
    }

    /// Adds what the user can do about it.
    pub fn hint(self, hint: impl Into<String>) -> Self {
        match self {
            Self::Usage { message, .. } => Self::Usage { message, hint: Some(hint.into()) },
            other => other,
        }
    }

    /// The process exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage { .. } => 2,
            Self::Interrupted => 130,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage { message, hint: None } => write!(f, "error: {message}"),
            Self::Usage { message, hint: Some(hint) } => write!(f, "error: {message}\n  hint: {hint}"),
            Self::Interrupted => f.write_str("interrupted"),
        }
    }
}

impl std::error::Error for Error {}
