//! One module per subcommand, and what several of them need to find their stream.

pub mod config;
pub mod explain;
pub mod generate;
mod observe;
pub mod pipeline;
pub mod status;
pub mod upload;
pub mod verify;

use sea_orm::DatabaseConnection;
use txp_consumer::registry::{ChooseError, choose_stream};
use txp_consumer::shutdown::Shutdown;

use crate::error::Error;
use crate::settings::Settings;

/// The settings with the stream a command works on: the one named (`--stream`, `upload.stream`),
/// else the only one in the database. Several: exit 2 naming them. None yet: with `wait` (a
/// detector started before its uploader) it waits, saying so once; else exit 2. `None` when
/// stopped while waiting.
pub(crate) async fn with_stream(
    settings: &Settings,
    db: &DatabaseConnection,
    wait: bool,
    mut shutdown: Shutdown,
) -> Result<Option<Settings>, Error> {
    let chosen =
        choose_stream(db, settings.named_stream(), wait, &mut shutdown).await.map_err(|e| match e {
            e @ ChooseError::Several(_) => Error::usage(e.to_string()),
            e @ ChooseError::NoneYet => {
                Error::usage(e.to_string()).hint("`txp upload` records a stream; `txp status` lists them")
            }
            ChooseError::Database(e) => Error::usage(format!("database: {e}")),
        })?;
    Ok(chosen.map(|stream| Settings { stream, ..settings.clone() }))
}
