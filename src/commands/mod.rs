//! One module per subcommand.

pub mod config;
pub mod explain;
pub mod generate;
mod observe;
pub mod pipeline;
pub mod status;
pub mod upload;
pub mod verify;
