//! Names in an object store or folder (docs/patterns.md §1 and §6): chunk folders
//! `chunk_<i>.csv/` holding `part-*.csv` files and, written last, an empty `_SUCCESS`.

/// The marker object written last in a complete folder; only folders holding it exist for readers.
pub const SUCCESS: &str = "_SUCCESS";
/// The part file the uploader writes in each chunk folder.
pub const PART_FILE: &str = "part-00000.csv";

/// The folder name of chunk `index`: `chunk_<index>.csv`.
pub fn chunk_folder(index: u64) -> String {
    format!("chunk_{index}.csv")
}

/// The index of a chunk folder name: a decimal integer without leading zeros.
pub fn parse_chunk_folder(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("chunk_")?.strip_suffix(".csv")?;
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    if canonical { digits.parse().ok() } else { None }
}

/// Whether a file in a chunk folder is a part file (`part-*.csv`).
pub fn is_part_file(name: &str) -> bool {
    name.starts_with("part-") && name.ends_with(".csv")
}

/// The quarantine beside an input root: `…/input` → `…/quarantine`, else `…-quarantine`. What
/// `txp upload` records for a stream when `--quarantine` is not given.
pub fn quarantine_beside(input_root: &str) -> String {
    let trimmed = input_root.trim_end_matches('/');
    match trimmed.rsplit_once('/') {
        Some((parent, "input")) => format!("{parent}/quarantine"),
        _ => format!("{trimmed}-quarantine"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_folder_names_round_trip() {
        assert_eq!(chunk_folder(10), "chunk_10.csv");
        assert_eq!(parse_chunk_folder("chunk_10.csv"), Some(10));
        assert_eq!(parse_chunk_folder("chunk_0.csv"), Some(0));
        for bad in [
            "chunk_01.csv",
            "chunk_.csv",
            "chunk_1.csv.tmp",
            "chunk_-1.csv",
            "chunk_1a.csv",
            "chunk_99999999999999999999.csv",
        ] {
            assert_eq!(parse_chunk_folder(bad), None, "{bad}");
        }
        assert!(is_part_file("part-00000.csv"));
        assert!(!is_part_file("_SUCCESS"));
    }

    #[test]
    fn quarantine_is_beside_the_input() {
        assert_eq!(quarantine_beside("s3://b/streaming/input"), "s3://b/streaming/quarantine");
        assert_eq!(quarantine_beside("file:///data/input/"), "file:///data/quarantine");
        assert_eq!(quarantine_beside("s3://b/chunks"), "s3://b/chunks-quarantine");
    }
}
