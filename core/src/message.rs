//! The queue message that announces one stored chunk (docs/messages.md). One type, shared by the
//! uploader that publishes it and the consumer that decodes it. Versioned: a consumer refuses a
//! version it does not know (a permanent failure: the message goes to the dead-letter queue).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The message version this build writes and reads.
pub const MESSAGE_VERSION: u32 = 1;

/// The largest body a consumer reads, and the largest the SQS queue publishes: SQS's classic
/// limit. AWS has since raised its own to 1 MiB (moto 5.2 follows), but queues created before,
/// and other SQS-compatible servers, keep 256 KiB, so a message that fits here fits everywhere.
/// A chunk message is well under 1 KiB: anything larger was not written by `txp upload`.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// One chunk, stored and complete (its `_SUCCESS` written), announced once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkMessage {
    /// Always [`MESSAGE_VERSION`] when written by this build.
    pub version: u32,
    /// The stream the chunk belongs to (`txp upload --stream`).
    pub stream: String,
    /// The chunk index: rows `index × chunk_rows + 1 ..` of the source.
    pub chunk: u64,
    /// Where the chunk's objects are: `s3://bucket/prefix` or `file:///absolute/folder`.
    pub store: String,
    /// The part files, relative to `store`, in read order (`chunk_3.csv/part-00000.csv`).
    pub objects: Vec<String>,
    /// The completion marker, relative to `store` (`chunk_3.csv/_SUCCESS`).
    pub success: String,
    /// Data rows in the chunk (header excluded).
    pub rows: u64,
    /// Bytes of the part files, header included.
    pub bytes: u64,
    /// SHA-256 of the part file, lowercase hex.
    pub sha256: String,
    /// When the chunk was stored (RFC 3339, UTC).
    pub uploaded_at: String,
}

/// SHA-256 as lowercase hex: how messages carry a chunk's digest, and how the replay audit
/// names a message.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// A reader that computes the SHA-256 of every byte read through it: a large file is checked
/// and parsed in one streaming pass instead of being held in memory whole.
#[derive(Debug)]
pub struct Sha256Reader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: std::io::Read> Sha256Reader<R> {
    pub fn new(inner: R) -> Self {
        Self { inner, hasher: Sha256::new() }
    }

    /// Reads the rest of the input, then returns the digest of all of it, as lowercase hex.
    pub fn finish(mut self) -> std::io::Result<String> {
        std::io::copy(&mut self, &mut std::io::sink())?;
        Ok(hex(&self.hasher.finalize()))
    }
}

impl<R: std::io::Read> std::io::Read for Sha256Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Bytes as lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a message body could not be decoded. Both are permanent: retrying cannot help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("not a chunk message: {0}")]
    Malformed(String),
    #[error("unknown message version {0} (this build reads version {MESSAGE_VERSION})")]
    UnknownVersion(u64),
}

impl ChunkMessage {
    /// The JSON body.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain strings and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes a body, checking its size, then the version before the fields.
    pub fn decode(body: &[u8]) -> Result<Self, MessageError> {
        if body.len() > MAX_MESSAGE_BYTES {
            return Err(MessageError::Malformed(format!(
                "{} bytes, over the limit of {MAX_MESSAGE_BYTES} bytes (256 KiB); a chunk message is under 1 KiB",
                body.len()
            )));
        }
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| MessageError::Malformed(e.to_string()))?;
        match value.get("version").and_then(serde_json::Value::as_u64) {
            Some(v) if v == u64::from(MESSAGE_VERSION) => {}
            Some(v) => return Err(MessageError::UnknownVersion(v)),
            None => return Err(MessageError::Malformed("no numeric `version` field".to_owned())),
        }
        serde_json::from_value(value).map_err(|e| MessageError::Malformed(e.to_string()))
    }
}

impl ChunkMessage {
    /// What, if anything, makes this message name something other than its own chunk in the
    /// layout of docs/patterns.md §1: `success` must be `chunk_<chunk>.csv/_SUCCESS`, `objects`
    /// one or more `chunk_<chunk>.csv/part-*.csv` in strictly ascending name order, and `chunk`
    /// an index the database can record (at most `i64::MAX`). Nothing else is trusted to come
    /// from the message: a consumer reads only these keys, and only under the stream's
    /// registered root.
    pub fn layout_error(&self) -> Option<String> {
        if i64::try_from(self.chunk).is_err() {
            return Some(format!("chunk index {} is beyond what the ledger can record", self.chunk));
        }
        let folder = crate::layout::chunk_folder(self.chunk);
        let success = format!("{folder}/{}", crate::layout::SUCCESS);
        if self.success != success {
            return Some(format!(
                "`success` is `{}`, not the layout's key for chunk {}: `{success}`",
                self.success, self.chunk
            ));
        }
        if self.objects.is_empty() {
            return Some("`objects` is empty: a chunk has at least one part file".to_owned());
        }
        let mut previous: Option<&str> = None;
        for key in &self.objects {
            let name = key.strip_prefix(&folder).and_then(|rest| rest.strip_prefix('/'));
            let is_part = name.is_some_and(|name| {
                crate::layout::is_part_file(name) && !name.contains(['/', '\\']) && !name.contains("..")
            });
            if !is_part {
                return Some(format!(
                    "object `{key}` is not a part file of chunk {} (the layout's keys are `{folder}/part-*.csv`)",
                    self.chunk
                ));
            }
            if previous.is_some_and(|p| p >= key.as_str()) {
                return Some(format!("`objects` are not in strictly ascending name order at `{key}`"));
            }
            previous = Some(key);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streamed_digest_covers_every_byte_even_those_left_unread() {
        use std::io::Read;
        let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut reader = Sha256Reader::new(&bytes[..]);
        let mut head = [0u8; 1000];
        reader.read_exact(&mut head).unwrap();
        assert_eq!(reader.finish().unwrap(), sha256_hex(&bytes));
        assert_eq!(Sha256Reader::new(&b""[..]).finish().unwrap(), sha256_hex(b""));
    }

    fn message() -> ChunkMessage {
        ChunkMessage {
            version: MESSAGE_VERSION,
            stream: "banksim".into(),
            chunk: 3,
            store: "s3://bucket/streaming/input".into(),
            objects: vec!["chunk_3.csv/part-00000.csv".into()],
            success: "chunk_3.csv/_SUCCESS".into(),
            rows: 10_000,
            bytes: 1_001_234,
            sha256: "ab".repeat(32),
            uploaded_at: "2026-11-30T11:04:23.123Z".into(),
        }
    }

    #[test]
    fn round_trips() {
        assert_eq!(ChunkMessage::decode(&message().encode()), Ok(message()));
    }

    #[test]
    fn refuses_other_versions_and_garbage() {
        let body = String::from_utf8(message().encode()).unwrap().replace("\"version\":1", "\"version\":2");
        assert_eq!(ChunkMessage::decode(body.as_bytes()), Err(MessageError::UnknownVersion(2)));
        assert!(matches!(ChunkMessage::decode(b"{"), Err(MessageError::Malformed(_))));
        assert!(matches!(ChunkMessage::decode(b"{\"chunk\":1}"), Err(MessageError::Malformed(_))));
        assert!(matches!(ChunkMessage::decode(b"{\"version\":1}"), Err(MessageError::Malformed(_))));
    }

    #[test]
    fn refuses_a_body_over_the_limit_even_when_it_is_a_valid_message() {
        // Unknown fields are ignored, so padding keeps it a valid message: only the size fails.
        let padded = |extra: usize| {
            let body = String::from_utf8(message().encode()).unwrap();
            let fill = "x".repeat(extra);
            format!("{{\"pad\":\"{fill}\",{}", &body[1..]).into_bytes()
        };
        let fits = padded(MAX_MESSAGE_BYTES - message().encode().len() - 9);
        assert_eq!(fits.len(), MAX_MESSAGE_BYTES);
        assert_eq!(ChunkMessage::decode(&fits), Ok(message()));
        let over = padded(MAX_MESSAGE_BYTES - message().encode().len() - 8);
        assert_eq!(over.len(), MAX_MESSAGE_BYTES + 1);
        let error = ChunkMessage::decode(&over).unwrap_err().to_string();
        assert!(
            error.starts_with("not a chunk message: 262145 bytes, over the limit of 262144 bytes"),
            "{error}"
        );
    }

    #[test]
    fn the_layout_check_accepts_only_the_chunks_own_keys() {
        assert_eq!(message().layout_error(), None);
        let two_parts = ChunkMessage {
            objects: vec!["chunk_3.csv/part-00000.csv".into(), "chunk_3.csv/part-00001.csv".into()],
            ..message()
        };
        assert_eq!(two_parts.layout_error(), None);
        let cases: [(ChunkMessage, &str); 9] = [
            (ChunkMessage { chunk: 4, ..message() }, "not the layout's key for chunk 4"),
            (ChunkMessage { success: "chunk_3.csv/_SUCCESS2".into(), ..message() }, "`success` is"),
            (ChunkMessage { objects: vec![], ..message() }, "`objects` is empty"),
            (
                ChunkMessage { objects: vec!["chunk_4.csv/part-00000.csv".into()], ..message() },
                "not a part file",
            ),
            (
                ChunkMessage { objects: vec!["chunk_3.csv/../x/part-0.csv".into()], ..message() },
                "not a part file",
            ),
            (
                ChunkMessage { objects: vec!["chunk_3.csv/sub/part-0.csv".into()], ..message() },
                "not a part file",
            ),
            (ChunkMessage { objects: vec!["chunk_3.csv/data.csv".into()], ..message() }, "not a part file"),
            (
                ChunkMessage {
                    objects: vec!["chunk_3.csv/part-1.csv".into(), "chunk_3.csv/part-0.csv".into()],
                    ..message()
                },
                "ascending",
            ),
            (
                ChunkMessage {
                    chunk: u64::MAX,
                    success: format!("chunk_{}.csv/_SUCCESS", u64::MAX),
                    ..message()
                },
                "beyond what the ledger can record",
            ),
        ];
        for (m, expected) in cases {
            let error = m.layout_error().unwrap_or_default();
            assert!(error.contains(expected), "{m:?}: {error}");
        }
    }
}
