//! One module per subcommand.

pub mod config;
pub mod generate;
pub mod pipeline;
pub mod upload;
pub mod verify;
