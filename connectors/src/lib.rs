//! The I/O edges of txpatterns, each behind a small trait and chosen from a URL by one function:
//! object stores ([`store::open_store`]: a local folder or `s3://`), queues
//! ([`queue::open_queue`]: `db`, `amqp://`, `sqs://`) and sources ([`source::open_source`]: a
//! path, `http(s)://`, `s3://`, a Google Drive share link). The uploader and the consumer use
//! these; nothing here knows what a chunk means.

pub mod database;
pub mod queue;
pub mod redact;
pub mod retry;
pub mod source;
pub mod store;
