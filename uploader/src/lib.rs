//! Mechanism X, the uploader: turns a transactions source into a stream of chunks. The cutter
//! (`cut`) splits a source into chunks exactly as `txp verify --source` replays them; `upload`
//! stores each chunk in an object store and, only once it is stored, announces it with one queue
//! message, keeping a ledger in the database so that a restarted upload resumes and a repeated
//! one changes nothing.

pub mod cut;
pub mod upload;
