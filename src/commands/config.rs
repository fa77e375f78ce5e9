//! `txp config show`: the effective settings as TOML, each line with its origin.

use std::io::Write;

use crate::Outcome;
use crate::error::Error;
use crate::settings::{KEYS, Settings, mask_secrets};

/// Prints the settings.
pub fn show(settings: &Settings) -> Result<Outcome, Error> {
    let mut out = String::new();
    let mut section = "";
    for (key, value, origin) in &settings.shown {
        let (table, name) = key.rsplit_once('.').unwrap_or(("", key));
        if table != section {
            if !section.is_empty() {
                out.push('\n');
            }
            out.push_str(&format!("[{table}]\n"));
            section = table;
        }
        let help = KEYS.iter().find(|k| k.name == *key).map_or("", |k| k.help);
        let line = format!("{name} = {}", mask_secrets(value));
        out.push_str(&format!("{line:<40} # {origin}; {help}\n"));
    }
    std::io::stdout()
        .write_all(out.as_bytes())
        .map_err(|e| Error::usage(format!("could not write to standard output: {e}")))?;
    Ok(Outcome::Success)
}
