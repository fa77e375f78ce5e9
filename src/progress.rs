//! Progress bars for long work: drawn on stderr when it is a terminal (indicatif hides them
//! otherwise), and never when `--quiet` is given. Plain progress lines, for logs, go to tracing.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How a command should show progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ui {
    pub quiet: bool,
}

impl Ui {
    /// A bar counting `unit` up to `len`.
    pub fn bar(&self, len: u64, message: &str, unit: &str) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(Some(len), self.target());
        let template = format!("{{msg:>12}} [{{bar:32}}] {{human_pos}}/{{human_len}} {unit} ({{eta}} left)");
        bar.set_style(
            ProgressStyle::with_template(&template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_message(message.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }

    /// A bar counting bytes up to `len`.
    pub fn bytes_bar(&self, len: u64, message: &str) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(Some(len), self.target());
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:>12} [{bar:32}] {binary_bytes}/{binary_total_bytes} ({eta} left)",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message(message.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }

    fn target(&self) -> ProgressDrawTarget {
        if self.quiet { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr() }
    }
}
