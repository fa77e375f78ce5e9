//! Mechanism Y, the consumer: reads stored chunks and turns them into aggregates.
//!
//! Today it holds the reader of chunk folders in a local directory, which `txp verify --input`
//! uses; consuming queue messages and committing aggregates come with `txp consume`.

pub mod chunk_folder;
