//! Mechanism X, the uploader: turns a transactions source into a stream of chunks.
//!
//! Today it holds the cutter, which `txp verify --source` uses so that it checks exactly the
//! chunks an upload produces; storing chunks and announcing them on a queue come with `txp upload`.

pub mod cut;
