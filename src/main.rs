//! The `txp` binary: parses flags, builds the settings once, and runs the command.

use std::process::ExitCode;

use txp::cli::{Cli, LogFormat};
use txp::interrupt::Interrupt;
use txp::settings::Settings;

fn main() -> ExitCode {
    install_panic_message();
    let cli = Cli::parse_args();
    init_logging(cli.log_format);
    let interrupt = Interrupt::install();
    let result = Settings::load(&cli.overrides()).and_then(|settings| txp::run(cli, &settings, &interrupt));
    match result {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        Err(error) => {
            #[allow(clippy::print_stderr, reason = "the one place errors reach the user")]
            {
                eprintln!("{error}");
            }
            ExitCode::from(error.exit_code())
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TXP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Colours only on a terminal: a log file or a pipe gets plain text that grep can read.
    let colours =
        std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colours);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// A panic is a bug: say so in one paragraph instead of a backtrace, and exit with code 101.
fn install_panic_message() {
    std::panic::set_hook(Box::new(|info| {
        // `txp status | head`: the reader went away. Not a bug; stop quietly, as a program
        // killed by SIGPIPE would (exit 141).
        if info.to_string().contains("Broken pipe") {
            std::process::exit(141);
        }
        let location = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        #[allow(clippy::print_stderr, reason = "the hook's only job is to tell the user")]
        {
            eprintln!(
                "error: internal error{location}: {info}\n  hint: this is a bug in txp {}; please report it with the command you ran",
                env!("CARGO_PKG_VERSION")
            );
        }
    }));
}
