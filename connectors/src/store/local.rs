//! A store that is a folder on the local disk: the default when nothing else is configured, and
//! what the tests and single-machine runs use. Keys map to files below the folder.

use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;

use super::{ObjectStore, StoreError};

/// Temporary files start with this, so that a listing never shows a half-written object.
const TMP_PREFIX: &str = ".txp-tmp-";

/// Makes temporary names unique among concurrent writers of one process (the process id
/// separates processes).
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A folder holding objects as files; keys are paths relative to it.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// A store rooted at `path` (made absolute against the current folder). The folder is not
    /// created here, so that merely naming a store has no effect: [`ObjectStore::check`] and the
    /// first write create it.
    pub fn new(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        if path.as_os_str().is_empty() {
            return Err(permanent(path, "empty folder name".to_owned()));
        }
        let root =
            std::path::absolute(path).map_err(|err| permanent(path, format!("cannot resolve: {err}")))?;
        Ok(Self { root })
    }

    /// The folder this store writes to.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file a key maps to, refusing keys that would leave the root (`..`, absolute paths),
    /// since a key comes from data and must never write elsewhere on the machine.
    fn path_of(&self, key: &str) -> Result<PathBuf, StoreError> {
        validate_key(key).map_err(|why| StoreError::Permanent {
            location: format!("{}/{key}", self.url()),
            message: format!("invalid key: {why}"),
            hint: Some("keys are relative paths of plain names separated by '/'".to_owned()),
        })?;
        Ok(self.root.join(key))
    }

    /// Lists keys with a string prefix, walking only the folder the prefix names.
    async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let dir_part = prefix.rfind('/').map_or("", |at| &prefix[..at]);
        if !dir_part.is_empty() {
            validate_key(dir_part)
                .map_err(|why| permanent(&self.root, format!("invalid prefix {prefix:?}: {why}")))?;
        }
        let mut keys = Vec::new();
        let mut pending = vec![(self.root.join(dir_part), dir_part.to_owned())];
        while let Some((dir, rel)) = pending.pop() {
            self.walk_one(&dir, &rel, prefix, &mut keys, &mut pending).await?;
        }
        keys.sort();
        Ok(keys)
    }

    /// Reads one folder: files matching `prefix` go to `keys`, subfolders to `pending`.
    async fn walk_one(
        &self,
        dir: &Path,
        rel: &str,
        prefix: &str,
        keys: &mut Vec<String>,
        pending: &mut Vec<(PathBuf, String)>,
    ) -> Result<(), StoreError> {
        let mut entries = match tokio::fs::read_dir(dir).await {
            Ok(entries) => entries,
            Err(err) if is_missing(&err) => return Ok(()),
            Err(err) => return Err(permanent(dir, format!("cannot list: {err}"))),
        };
        while let Some(entry) =
            entries.next_entry().await.map_err(|err| permanent(dir, format!("cannot list: {err}")))?
        {
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                tracing::warn!(path = %entry.path().display(), "skipping a file whose name is not UTF-8");
                continue;
            };
            if name.starts_with(TMP_PREFIX) {
                continue;
            }
            let key = if rel.is_empty() { name } else { format!("{rel}/{name}") };
            let kind = entry
                .file_type()
                .await
                .map_err(|err| permanent(&entry.path(), format!("cannot stat: {err}")))?;
            if kind.is_dir() {
                pending.push((entry.path(), key));
            } else if key.starts_with(prefix) {
                keys.push(key);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl ObjectStore for LocalStore {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        let path = self.path_of(key)?;
        write_atomically(&path, &bytes).await
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path_of(key)?;
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(err) if is_missing(&err) => Ok(None),
            Err(err) => Err(permanent(&path, format!("cannot read: {err}"))),
        }
    }

    async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        let path = self.path_of(key)?;
        match tokio::fs::metadata(&path).await {
            Ok(meta) => Ok(meta.is_file()),
            Err(err) if is_missing(&err) => Ok(false),
            Err(err) => Err(permanent(&path, format!("cannot stat: {err}"))),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.list_keys(prefix).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path_of(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(err) if is_missing(&err) => Ok(()),
            Err(err) => Err(permanent(&path, format!("cannot delete: {err}"))),
        }
    }

    async fn check(&self) -> Result<(), StoreError> {
        let hint = || Some("check that the folder's parent exists and is writable".to_owned());
        if let Err(err) = tokio::fs::create_dir_all(&self.root).await {
            return Err(StoreError::Permanent {
                location: self.root.display().to_string(),
                message: format!("cannot create folder {}: {err}", self.root.display()),
                hint: hint(),
            });
        }
        match tokio::fs::metadata(&self.root).await {
            Ok(meta) if meta.is_dir() => Ok(()),
            Ok(_) => Err(StoreError::Permanent {
                location: self.root.display().to_string(),
                message: format!("{} is not a folder", self.root.display()),
                hint: hint(),
            }),
            Err(err) => Err(permanent(&self.root, format!("cannot open folder: {err}"))),
        }
    }

    fn url(&self) -> String {
        format!("file://{}", self.root.display())
    }
}

/// Checks that a key is a relative path of plain names: no empty, `.` or `..` component, no
/// leading `/`, no backslash or NUL.
fn validate_key(key: &str) -> Result<(), &'static str> {
    if key.is_empty() {
        return Err("empty key");
    }
    if key.starts_with('/') || Path::new(key).is_absolute() {
        return Err("absolute keys are not allowed");
    }
    if key.contains('\\') || key.contains('\0') {
        return Err("backslashes and NUL are not allowed");
    }
    for part in key.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return Err("empty, '.' and '..' components are not allowed");
        }
    }
    // Belt and braces: what the platform parses must be plain names too.
    if Path::new(key).components().all(|c| matches!(c, Component::Normal(_))) {
        Ok(())
    } else {
        Err("the key is not a plain relative path")
    }
}

/// Writes `bytes` to a temporary file beside `path`, flushes it to disk, then renames it over
/// `path`, so that readers see the old object or the new one, never part of one.
async fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let Some(dir) = path.parent() else {
        return Err(permanent(path, "no parent folder".to_owned()));
    };
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|err| permanent(dir, format!("cannot create folder: {err}")))?;
    let tmp = dir.join(format!(
        "{TMP_PREFIX}{}-{}",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = write_and_sync(&tmp, bytes).await;
    let renamed = match written {
        Ok(()) => tokio::fs::rename(&tmp, path).await,
        Err(err) => Err(err),
    };
    if let Err(err) = renamed {
        // Best effort: a leftover temporary file is hidden from listings anyway.
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(permanent(path, format!("cannot write: {err}")));
    }
    Ok(())
}

/// Creates `path` with `bytes` and waits until they are on disk.
async fn write_and_sync(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = tokio::fs::File::create(path).await?;
    file.write_all(bytes).await?;
    file.sync_all().await
}

/// Whether an I/O error means "no such file or folder".
fn is_missing(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::NotFound
}

/// A permanent error about a local path (local I/O errors do not go away by retrying).
fn permanent(path: &Path, message: String) -> StoreError {
    StoreError::Permanent { location: path.display().to_string(), message, hint: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, LocalStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().join("root")).unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn new_does_not_create_and_check_does() {
        let (_dir, store) = store();
        assert!(!store.root().exists());
        store.check().await.unwrap();
        assert!(store.root().is_dir());
    }

    #[tokio::test]
    async fn check_names_the_folder_it_cannot_create() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"x").unwrap();
        let store = LocalStore::new(file.join("below")).unwrap();
        let err = store.check().await.unwrap_err();
        assert!(!err.is_transient());
        assert!(err.to_string().contains("below"), "{err}");
        assert!(err.hint().is_some());
    }

    #[tokio::test]
    async fn put_get_exists_delete() {
        let (_dir, store) = store();
        assert_eq!(store.get("a/b/c.bin").await.unwrap(), None);
        assert!(!store.exists("a/b/c.bin").await.unwrap());
        store.put("a/b/c.bin", b"hello".to_vec()).await.unwrap();
        assert_eq!(store.get("a/b/c.bin").await.unwrap().as_deref(), Some(&b"hello"[..]));
        assert!(store.exists("a/b/c.bin").await.unwrap());
        assert!(!store.exists("a/b").await.unwrap(), "a folder is not an object");
        store.delete("a/b/c.bin").await.unwrap();
        assert_eq!(store.get("a/b/c.bin").await.unwrap(), None);
        store.delete("a/b/c.bin").await.unwrap();
        store.delete("never/was").await.unwrap();
    }

    #[tokio::test]
    async fn list_is_recursive_relative_and_sorted() {
        let (_dir, store) = store();
        assert!(store.list("").await.unwrap().is_empty(), "a missing root lists as empty");
        for key in ["z.txt", "chunks/2/b", "chunks/1/a", "chunks/10/c", "chunksx/d", "out/e"] {
            store.put(key, key.as_bytes().to_vec()).await.unwrap();
        }
        assert_eq!(
            store.list("").await.unwrap(),
            ["chunks/1/a", "chunks/10/c", "chunks/2/b", "chunksx/d", "out/e", "z.txt"]
        );
        assert_eq!(store.list("chunks/").await.unwrap(), ["chunks/1/a", "chunks/10/c", "chunks/2/b"]);
        assert_eq!(
            store.list("chunks").await.unwrap(),
            ["chunks/1/a", "chunks/10/c", "chunks/2/b", "chunksx/d"]
        );
        assert_eq!(store.list("chunks/1").await.unwrap(), ["chunks/1/a", "chunks/10/c"]);
        assert!(store.list("nothing/here/").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn url_is_file_and_absolute() {
        let (dir, store) = store();
        assert_eq!(store.url(), format!("file://{}", dir.path().join("root").display()));
        let relative = LocalStore::new("some/relative").unwrap();
        assert!(relative.url().starts_with("file:///"), "{}", relative.url());
    }

    #[tokio::test]
    async fn keys_cannot_escape_the_root() {
        let (dir, store) = store();
        for key in ["../x", "a/../../x", "/etc/passwd", "", "a//b", "./a", "a/./b", "a\\..\\b"] {
            let err = store.put(key, b"x".to_vec()).await.unwrap_err();
            assert!(!err.is_transient(), "{key}");
            assert!(err.to_string().contains("invalid key"), "{key}: {err}");
            assert!(store.get(key).await.is_err(), "{key}");
            assert!(store.delete(key).await.is_err(), "{key}");
        }
        assert!(!dir.path().join("x").exists());
        assert!(store.list("../").await.is_err());
    }

    #[tokio::test]
    async fn overwrite_is_atomic_and_idempotent() {
        let (_dir, store) = store();
        let bytes: Vec<u8> = (0..100_000u32).flat_map(u32::to_le_bytes).collect();
        store.put("k", bytes.clone()).await.unwrap();
        store.put("k", bytes.clone()).await.unwrap();
        assert_eq!(store.get("k").await.unwrap().unwrap(), bytes);
        store.put("k", b"other".to_vec()).await.unwrap();
        assert_eq!(store.get("k").await.unwrap().unwrap(), b"other");
        // No temporary file is left behind, and none is listed.
        let names: Vec<_> =
            std::fs::read_dir(store.root()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["k"]);
        assert_eq!(store.list("").await.unwrap(), ["k"]);
    }

    #[tokio::test]
    async fn concurrent_writers_of_one_key_leave_a_whole_object() {
        let (_dir, store) = store();
        let store = std::sync::Arc::new(store);
        let a = vec![b'a'; 1 << 20];
        let b = vec![b'b'; 1 << 20];
        let mut tasks = Vec::new();
        for i in 0..8 {
            let store = store.clone();
            let bytes = if i % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(async move { store.put("same", bytes).await }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let got = store.get("same").await.unwrap().unwrap();
        assert!(got == a || got == b);
    }

    #[tokio::test]
    async fn open_store_picks_a_folder_for_paths_and_file_urls() {
        let dir = tempfile::tempdir().unwrap();
        let settings = super::super::S3Settings::default();
        let url = format!("file://{}", dir.path().display());
        let store = super::super::open_store(&url, &settings).await.unwrap();
        assert_eq!(store.url(), url);
        let plain = super::super::open_store(&dir.path().display().to_string(), &settings).await.unwrap();
        assert_eq!(plain.url(), url);
    }
}
