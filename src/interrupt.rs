//! Ctrl-C and SIGTERM: the first one asks long work to stop at its next step (it then returns
//! [`Error::Interrupted`], exit code 130, after tidying up); a second one exits at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::Error;

/// A flag that long-running work polls between steps.
#[derive(Debug, Clone, Default)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    /// Installs the process's handler. Call once, from `main`.
    pub fn install() -> Self {
        let flag = Self::default();
        let seen = flag.0.clone();
        // If no handler can be installed the default behaviour (exit on the signal) remains.
        let _ = ctrlc::set_handler(move || {
            if seen.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        });
        flag
    }

    /// `Err(Interrupted)` once a signal has arrived.
    pub fn check(&self) -> Result<(), Error> {
        if self.0.load(Ordering::SeqCst) { Err(Error::Interrupted) } else { Ok(()) }
    }
}
