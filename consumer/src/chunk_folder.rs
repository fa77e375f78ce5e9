//! Chunks stored in a local folder, in the layout of docs/patterns.md §1: `chunk_<i>.csv/`
//! folders, each with `part-*.csv` files (read in name order) and, written last, `_SUCCESS`.
//! A folder without `_SUCCESS` is still being written and does not exist for a reader.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use txp_core::layout::{SUCCESS, is_part_file, parse_chunk_folder};

/// A complete chunk folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkEntry {
    pub index: u64,
    pub path: PathBuf,
}

/// What a folder holds: complete chunks in index order, and incomplete ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkListing {
    pub complete: Vec<ChunkEntry>,
    pub incomplete: Vec<PathBuf>,
}

/// Lists the chunk folders under `dir`; other names are ignored.
pub fn list_chunks(dir: &Path) -> io::Result<ChunkListing> {
    let mut listing = ChunkListing::default();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(index) = name.to_str().and_then(parse_chunk_folder) else {
            continue;
        };
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        if path.join(SUCCESS).is_file() {
            listing.complete.push(ChunkEntry { index, path });
        } else {
            listing.incomplete.push(path);
        }
    }
    listing.complete.sort_by_key(|c| c.index);
    listing.incomplete.sort();
    Ok(listing)
}

/// A chunk's part files, in name order, with their bytes.
pub fn read_parts(chunk: &ChunkEntry) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut names: Vec<String> = fs::read_dir(&chunk.path)?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| is_part_file(name))
        .collect();
    names.sort();
    names.into_iter().map(|name| fs::read(chunk.path.join(&name)).map(|bytes| (name, bytes))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_complete_chunks_in_index_order() {
        let dir = tempfile::tempdir().unwrap();
        for (name, complete) in [
            ("chunk_10.csv", true),
            ("chunk_9.csv", true),
            ("chunk_2.csv", false),
            ("chunk_01.csv", true),
            ("other", true),
        ] {
            let folder = dir.path().join(name);
            fs::create_dir(&folder).unwrap();
            fs::write(folder.join("part-00001.csv"), "b").unwrap();
            fs::write(folder.join("part-00000.csv"), "a").unwrap();
            if complete {
                fs::write(folder.join(SUCCESS), "").unwrap();
            }
        }
        let listing = list_chunks(dir.path()).unwrap();
        assert_eq!(listing.complete.iter().map(|c| c.index).collect::<Vec<_>>(), vec![9, 10]);
        assert_eq!(listing.incomplete, vec![dir.path().join("chunk_2.csv")]);
        let parts = read_parts(&listing.complete[0]).unwrap();
        assert_eq!(
            parts,
            vec![("part-00000.csv".into(), b"a".to_vec()), ("part-00001.csv".into(), b"b".to_vec())]
        );
    }
}
