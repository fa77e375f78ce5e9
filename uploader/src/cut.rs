//! Cuts a transactions source into chunks as a stream: rows 1..N are chunk 0, N+1..2N chunk 1,
//! and so on. Each chunk is the source's header line followed by its rows, byte for byte (line
//! endings included), so that a chunk file is exactly the part of the source it stands for.
//! Memory holds one chunk at a time, whatever the size of the source.

use std::io::BufRead;
use std::num::NonZeroU64;

use txp_core::contract::{TRANSACTION_COLUMNS, TRANSACTIONS_HEADER, is_header, strip_line_ending};

/// One chunk of a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceChunk {
    pub index: u64,
    /// The header line, then the rows as read.
    pub bytes: Vec<u8>,
    /// How many rows (physical lines after the header) it holds.
    pub rows: u64,
}

/// Why a source cannot be cut.
#[derive(Debug, thiserror::Error)]
pub enum CutError {
    #[error(
        "the source's first line is not the transactions header: expected `{TRANSACTIONS_HEADER}`, found {found}"
    )]
    Header { found: String },
    #[error("could not read the source: {0}")]
    Read(#[from] std::io::Error),
}

/// An iterator over the chunks of a source.
#[derive(Debug)]
pub struct ChunkCutter<R> {
    reader: R,
    header: Vec<u8>,
    rows_per_chunk: NonZeroU64,
    next_index: u64,
    bytes_read: u64,
    done: bool,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl<R: BufRead> ChunkCutter<R> {
    /// Reads and checks the header line; fails before any chunk when it is not the contract's.
    pub fn new(mut reader: R, rows_per_chunk: NonZeroU64) -> Result<Self, CutError> {
        let mut header = Vec::new();
        let read = reader.read_until(b'\n', &mut header)?;
        if read == 0 || !is_header(&header, &TRANSACTION_COLUMNS) {
            let found = if read == 0 {
                "an empty file".to_owned()
            } else {
                format!("`{}`", String::from_utf8_lossy(strip_line_ending(&header)))
            };
            return Err(CutError::Header { found });
        }
        let bytes_read = read as u64;
        if header.starts_with(BOM) {
            header.drain(..BOM.len());
        }
        if !header.ends_with(b"\n") {
            header.push(b'\n');
        }
        Ok(Self { reader, header, rows_per_chunk, next_index: 0, bytes_read, done: false })
    }

    /// Bytes of the source read so far (for progress).
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    fn next_chunk(&mut self) -> Result<Option<SourceChunk>, CutError> {
        if self.done {
            return Ok(None);
        }
        let mut bytes = self.header.clone();
        let mut rows = 0;
        while rows < self.rows_per_chunk.get() {
            let read = self.reader.read_until(b'\n', &mut bytes)?;
            if read == 0 {
                self.done = true;
                break;
            }
            self.bytes_read += read as u64;
            rows += 1;
        }
        if rows == 0 {
            return Ok(None);
        }
        let index = self.next_index;
        self.next_index += 1;
        Ok(Some(SourceChunk { index, bytes, rows }))
    }
}

impl<R: BufRead> Iterator for ChunkCutter<R> {
    type Item = Result<SourceChunk, CutError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_chunk() {
            Ok(chunk) => chunk.map(Ok),
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(text: &str, n: u64) -> Vec<SourceChunk> {
        ChunkCutter::new(text.as_bytes(), NonZeroU64::new(n).unwrap()).unwrap().map(Result::unwrap).collect()
    }

    #[test]
    fn chunks_are_header_plus_rows_byte_for_byte() {
        let h = TRANSACTIONS_HEADER;
        let chunks = cut(&format!("\u{feff}{h}\r\na\r\nb\n\nc"), 2);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].bytes, format!("{h}\r\na\r\nb\n").into_bytes());
        assert_eq!((chunks[1].index, chunks[1].rows), (1, 2));
        assert_eq!(chunks[1].bytes, format!("{h}\r\n\nc").into_bytes());
        // Rows that divide evenly: no empty trailing chunk.
        assert_eq!(cut(&format!("{h}\na\nb\n"), 1).len(), 2);
        assert_eq!(cut(&format!("{h}\na\nb\n"), 2).len(), 1);
        // A header alone: no chunk.
        assert!(cut(h, 5).is_empty());
    }

    #[test]
    fn a_wrong_header_is_refused_naming_the_expected_one() {
        let err = ChunkCutter::new(&b"a,b\nrow\n"[..], NonZeroU64::MIN).unwrap_err().to_string();
        assert!(err.contains(TRANSACTIONS_HEADER) && err.contains("found `a,b`"), "{err}");
        let err = ChunkCutter::new(&b""[..], NonZeroU64::MIN).unwrap_err().to_string();
        assert!(err.contains("an empty file"), "{err}");
    }
}
