//! sea-orm-migration's own command line over our migrations (`cargo run -p txp-migration -- up`),
//! for development; users run `txp migrate`.

use sea_orm_migration::prelude::*;

#[tokio::main]
async fn main() {
    cli::run_cli(txp_migration::Migrator).await;
}
