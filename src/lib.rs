//! The `txp` command line as a library: `main` parses flags and builds settings, then calls
//! [`run`]. Each command lives in its own module under `commands`.

pub mod cli;
mod commands;
pub mod error;
pub mod interrupt;
mod progress;
pub mod settings;

use cli::{Cli, Command, ConfigCommand, QueueCommand};
use error::Error;
use interrupt::Interrupt;
use progress::Ui;
use settings::Settings;

/// How a successful command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit code 0.
    Success,
    /// `verify` found differences: exit code 1.
    Differences,
    /// `explain` found no such detection: exit code 1.
    NotFound,
}

impl Outcome {
    /// The process exit code.
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::Differences => 1,
            Self::NotFound => 1,
        }
    }
}

/// Runs a parsed command line with its settings.
pub fn run(cli: Cli, settings: &Settings, interrupt: &Interrupt) -> Result<Outcome, Error> {
    let ui = Ui { quiet: cli.quiet };
    match cli.command {
        Command::Generate(args) => commands::generate::run(&args, ui, interrupt),
        Command::Verify(args) => commands::verify::run(&args, settings, ui, interrupt),
        Command::Config(ConfigCommand::Show) => commands::config::show(settings),
        Command::Upload(args) => commands::upload::run(&args, settings, ui, interrupt),
        Command::Queue(QueueCommand::Setup { .. }) => commands::upload::queue_setup(settings),
        Command::Migrate(_) => commands::upload::migrate(settings),
        Command::Consume(args) => commands::pipeline::consume(&args, settings, interrupt),
        Command::Detect(args) => commands::pipeline::detect(&args, settings, interrupt),
        Command::Run(args) => commands::pipeline::run(&args, settings, interrupt),
        Command::Demo(args) => commands::pipeline::demo(&args, settings, ui, interrupt),
        Command::Skip(args) => commands::pipeline::skip(&args, settings),
        Command::Reconcile(args) => commands::pipeline::reconcile(&args, settings),
        Command::Replay(args) => commands::pipeline::replay(&args, settings, interrupt),
        Command::Status(args) => commands::status::run(&args, settings),
        Command::Explain(args) => commands::explain::run(&args, settings),
    }
}
