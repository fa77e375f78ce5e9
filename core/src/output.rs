//! The formats of what txpatterns writes (docs/patterns.md §4 and §6): the detector's output
//! files, `pattern_detected_<YYYYMMDDTHHMMSS>_<n>.csv/part-00000.csv`, and `verify --emit`. Both
//! use the spreadsheet-safe form of names. Pure: callers read and write the bytes.

use std::collections::BTreeMap;

use crate::detection::{Detection, Pattern, excel_safe};

/// The columns of a detector output file.
pub const OUTPUT_COLUMNS: [&str; 6] =
    ["YStartTime(IST)", "detectionTime(IST)", "patternId", "ActionType", "customerName", "MerchantId"];
/// The columns of `verify --emit`.
pub const EMIT_COLUMNS: [&str; 5] = ["patternId", "ActionType", "customerName", "MerchantId", "chunkIndex"];

/// Whether a folder name is an output file's: `pattern_detected_<8 digits>T<6 digits>_<n>.csv`.
pub fn is_output_folder(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("pattern_detected_").and_then(|r| r.strip_suffix(".csv")) else {
        return false;
    };
    let bytes = rest.as_bytes();
    if bytes.len() < 17 || bytes[8] != b'T' || bytes[15] != b'_' {
        return false;
    }
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    let n = &bytes[16..];
    digits(&bytes[..8]) && digits(&bytes[9..15]) && digits(n) && (n == b"0" || n[0] != b'0')
}

/// A detection key as output files hold it: names in their spreadsheet-safe form.
pub type OutputKey = (Pattern, String, String);

/// The output key of a detection.
pub fn output_key(d: &Detection) -> OutputKey {
    (d.pattern, excel_safe(&d.customer).into_owned(), excel_safe(&d.merchant).into_owned())
}

/// A row of an output file that does not hold a detection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputProblem {
    pub file: String,
    pub line: u64,
    pub message: String,
}

/// The keys found in a set of output files, with how many times each was written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutputKeys {
    pub keys: BTreeMap<OutputKey, u64>,
    pub problems: Vec<OutputProblem>,
}

/// Why an output file could not be read at all.
#[derive(Debug, thiserror::Error)]
#[error("{file}: the first line is not the expected header `{}`", OUTPUT_COLUMNS.join(","))]
pub struct OutputHeaderError {
    pub file: String,
}

impl OutputKeys {
    /// Adds the rows of one output part file (standard CSV, as the `csv` crate writes it).
    pub fn add_part(&mut self, file: &str, bytes: &[u8]) -> Result<(), OutputHeaderError> {
        let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(bytes);
        let header_ok = reader.byte_headers().is_ok_and(|h| {
            let mut fields: Vec<&[u8]> = h.iter().collect();
            if let Some(first) = fields.first_mut() {
                *first = first.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(first);
            }
            fields.len() == OUTPUT_COLUMNS.len()
                && fields.iter().zip(OUTPUT_COLUMNS).all(|(f, c)| *f == c.as_bytes())
        });
        if !header_ok {
            return Err(OutputHeaderError { file: file.to_owned() });
        }
        for record in reader.records() {
            let problem = |line: u64, message: String| OutputProblem { file: file.to_owned(), line, message };
            let record = match record {
                Ok(record) => record,
                Err(e) => {
                    let line = e.position().map_or(0, csv::Position::line);
                    self.problems.push(problem(line, format!("unreadable row: {e}")));
                    continue;
                }
            };
            let line = record.position().map_or(0, csv::Position::line);
            if record.len() != OUTPUT_COLUMNS.len() {
                self.problems.push(problem(line, format!("expected 6 fields, found {}", record.len())));
                continue;
            }
            let (id, action) = (&record[2], &record[3]);
            match Pattern::from_id(id) {
                Some(pattern) if pattern.action_type() == action => {
                    *self.keys.entry((pattern, record[4].to_owned(), record[5].to_owned())).or_default() += 1;
                }
                _ => self.problems.push(problem(line, format!("pattern `{id}` with ActionType `{action}`"))),
            }
        }
        Ok(())
    }
}

/// How a pipeline's output differs from the reference detections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutputDiff {
    /// Reference detections absent from the output.
    pub missing: Vec<Detection>,
    /// Keys in the output that the reference does not have.
    pub extra: Vec<OutputKey>,
    /// Keys written more than once, with how many times.
    pub duplicated: Vec<(OutputKey, u64)>,
}

impl OutputDiff {
    /// Compares the reference detections with the keys found.
    pub fn new(reference: &[Detection], found: &OutputKeys) -> Self {
        let expected: BTreeMap<OutputKey, &Detection> =
            reference.iter().map(|d| (output_key(d), d)).collect();
        Self {
            missing: expected
                .iter()
                .filter(|(k, _)| !found.keys.contains_key(*k))
                .map(|(_, d)| (*d).clone())
                .collect(),
            extra: found.keys.keys().filter(|k| !expected.contains_key(*k)).cloned().collect(),
            duplicated: found.keys.iter().filter(|(_, n)| **n > 1).map(|(k, n)| (k.clone(), *n)).collect(),
        }
    }

    /// True when the output holds exactly the reference's keys, each once.
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty() && self.duplicated.is_empty()
    }
}

/// Writes detections in the `--emit` format: header, then one row each, as given.
pub fn write_emit<W: std::io::Write>(writer: W, detections: &[Detection]) -> csv::Result<()> {
    let mut csv = csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(writer);
    csv.write_record(EMIT_COLUMNS)?;
    for d in detections {
        let chunk = d.chunk.to_string();
        csv.write_record([
            d.pattern.id(),
            d.pattern.action_type(),
            &excel_safe(&d.customer),
            &excel_safe(&d.merchant),
            chunk.as_str(),
        ])?;
    }
    csv.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_folder_names() {
        assert!(is_output_folder("pattern_detected_20261130T110423_0.csv"));
        assert!(is_output_folder("pattern_detected_20261130T110423_12.csv"));
        assert!(!is_output_folder("pattern_detected_20261130T110423_01.csv"));
        assert!(!is_output_folder("pattern_detected_2026113T110423_1.csv"));
        assert!(!is_output_folder("pattern_detected_20261130T110423_1.csv.tmp"));
        assert!(!is_output_folder("chunk_0.csv"));
    }

    #[test]
    fn reads_keys_and_reports_bad_rows() {
        let text = "YStartTime(IST),detectionTime(IST),patternId,ActionType,customerName,MerchantId\n\
            2026-11-30 16:34:23,2026-11-30 16:34:24,PatId2,CHILD,C1,M1\n\
            x,y,PatId3,DEI-NEEDED,,M2\n\
            x,y,PatId1,CHILD,C1,M1\n\
            x,y,PatId2\n\
            x,y,PatId2,CHILD,C1,M1\n";
        let mut keys = OutputKeys::default();
        keys.add_part("a.csv", text.as_bytes()).unwrap();
        assert_eq!(keys.keys.get(&(Pattern::Child, "C1".into(), "M1".into())), Some(&2));
        assert_eq!(keys.keys.get(&(Pattern::DeiNeeded, String::new(), "M2".into())), Some(&1));
        assert_eq!(keys.problems.iter().map(|p| p.line).collect::<Vec<_>>(), vec![4, 5]);
        assert!(keys.add_part("b.csv", b"a,b\n").is_err());
    }

    #[test]
    fn diff_names_missing_extra_and_duplicated() {
        let d = |pattern, customer: &str| Detection {
            chunk: 0,
            pattern,
            customer: customer.into(),
            merchant: "M".into(),
        };
        let reference = vec![d(Pattern::Child, "=C1"), d(Pattern::Child, "C2")];
        let mut found = OutputKeys::default();
        found.keys.insert((Pattern::Child, "'=C1".into(), "M".into()), 2);
        found.keys.insert((Pattern::Upgrade, "C3".into(), "M".into()), 1);
        let diff = OutputDiff::new(&reference, &found);
        assert_eq!(diff.missing, vec![d(Pattern::Child, "C2")]);
        assert_eq!(diff.extra, vec![(Pattern::Upgrade, "C3".into(), "M".into())]);
        assert_eq!(diff.duplicated, vec![((Pattern::Child, "'=C1".into(), "M".into()), 2)]);
        assert!(!diff.is_empty());
    }

    #[test]
    fn emit_writes_safe_names() {
        let mut out = Vec::new();
        write_emit(
            &mut out,
            &[Detection {
                chunk: 3,
                pattern: Pattern::Upgrade,
                customer: "=1+2".into(),
                merchant: "M,1".into(),
            }],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "patternId,ActionType,customerName,MerchantId,chunkIndex\nPatId1,UPGRADE,'=1+2,\"M,1\",3\n"
        );
    }
}
