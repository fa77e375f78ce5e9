//! Graceful shutdown: one signal that every worker and detector loop watches. Once raised, loops
//! take no new message or chunk, finish (or release) what they hold, and return.

use tokio::sync::watch;

/// The sending side, held by whoever decides to stop (a signal handler, a test).
#[derive(Debug, Clone)]
pub struct ShutdownSignal(watch::Sender<bool>);

/// The receiving side, cloned into every loop.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A new signal, not raised.
pub fn channel() -> (ShutdownSignal, Shutdown) {
    let (sender, receiver) = watch::channel(false);
    (ShutdownSignal(sender), Shutdown(receiver))
}

impl ShutdownSignal {
    /// Asks every loop to stop.
    pub fn raise(&self) {
        self.0.send_replace(true);
    }
}

impl Shutdown {
    /// Whether stopping was asked for.
    pub fn is_raised(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits until stopping is asked for (forever when the sender is gone without raising).
    pub async fn raised(&mut self) {
        if self.0.wait_for(|raised| *raised).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Sleeps for `duration`, or less when stopping is asked for meanwhile.
    pub async fn sleep(&mut self, duration: std::time::Duration) {
        tokio::select! {
            () = tokio::time::sleep(duration) => {}
            () = self.raised() => {}
        }
    }
}
