//! Files only the gateway may read.
//!
//! - Files that hold what users typed (the SQLite session database, its
//!   WAL, the recorder's spool) are created 0600 in directories created
//!   0700, whatever the umask ([`ensure_file`], [`ensure_dir`]). Existing
//!   ones that are wider are reported at start (a warning naming the path
//!   and its mode), not silently changed: an operator may have meant it.
//! - Secrets (the host key, the recording key) are read only from regular,
//!   owner-only files of a bounded size ([`read_secret`]) and written to new
//!   files created 0600 ([`write_new_secret`]).

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of a new private file.
pub const FILE_MODE: u32 = 0o600;
/// Mode of a new private directory.
pub const DIR_MODE: u32 = 0o700;

/// Creates `dir` (and missing parents) 0700 when missing; warns when an
/// existing `dir` is readable by group or others.
pub fn ensure_dir(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    if !dir.exists() {
        DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)?;
    }
    warn_if_wide(dir);
    Ok(())
}

/// Creates `file` empty and 0600 when missing (its directory must exist);
/// warns when an existing one is readable by others.
pub fn ensure_file(file: &Path) -> io::Result<()> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(file)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            warn_if_wide(file);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Why a secret file could not be read or written. Callers turn it into
/// their own error, whose text names what the file is for.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    /// Opening, reading, creating or writing failed.
    #[error("{}: cannot {action}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done (`read`, `create`, …).
        action: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The file is accessible by group or others.
    #[error("{}: permissions {mode:04o} are too open", path.display())]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Not a regular file, or too large.
    #[error("{}: {why}", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// Reads a secret: a regular file of at most `max` bytes that neither group
/// nor others may access.
pub fn read_secret(path: &Path, max: u64) -> Result<Vec<u8>, SecretFileError> {
    let io_err = |action| {
        move |source| SecretFileError::Io {
            path: path.to_owned(),
            action,
            source,
        }
    };
    let file = File::open(path).map_err(io_err("read"))?;
    let meta = file.metadata().map_err(io_err("read"))?;
    let not_a_file = |why: String| SecretFileError::NotAFile {
        path: path.to_owned(),
        why,
    };
    if !meta.is_file() {
        return Err(not_a_file("not a regular file".into()));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(SecretFileError::TooOpen {
            path: path.to_owned(),
            mode,
        });
    }
    if meta.len() > max {
        return Err(not_a_file(format!("{} bytes is too large", meta.len())));
    }
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err("read"))?;
    Ok(bytes)
}

/// Writes `contents` to a new file created 0600 (its missing directories
/// 0700) and synced; fails if the file exists, and leaves no partial file.
pub fn write_new_secret(path: &Path, contents: &[u8]) -> Result<(), SecretFileError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)
            .map_err(|source| SecretFileError::Io {
                path: dir.to_owned(),
                action: "create directory",
                source,
            })?;
    }
    let io_err = |action| {
        move |source| SecretFileError::Io {
            path: path.to_owned(),
            action,
            source,
        }
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
        .map_err(io_err("create"))?;
    if let Err(e) = file.write_all(contents).and_then(|()| file.sync_all()) {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(io_err("write")(e));
    }
    Ok(())
}

/// The mode bits of `path` that give group or others any access, if any.
pub fn wide_bits(path: &Path) -> Option<u32> {
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then_some(mode)
}

fn warn_if_wide(path: &Path) {
    if let Some(mode) = wide_bits(path) {
        tracing::warn!(
            path = %path.display(), mode = format!("{mode:o}"),
            "holds session recordings but is accessible to other users; chmod it to owner-only (0600 for files, 0700 for directories)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_owner_only_whatever_the_umask() {
        let dir = tempfile::tempdir().expect("tmp");
        let sub = dir.path().join("a/b");
        ensure_dir(&sub).expect("dir");
        assert_eq!(
            std::fs::metadata(&sub).expect("meta").permissions().mode() & 0o777,
            DIR_MODE
        );
        let db = dir.path().join("ssmgate.db");
        ensure_file(&db).expect("file");
        assert_eq!(
            std::fs::metadata(&db).expect("meta").permissions().mode() & 0o777,
            FILE_MODE
        );
        assert_eq!(wide_bits(&db), None);
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert_eq!(wide_bits(&db), Some(0o644));
        // An existing file is left as it is (and warned about).
        ensure_file(&db).expect("existing");
        assert_eq!(wide_bits(&db), Some(0o644));
    }

    #[test]
    fn secrets_are_owner_only_regular_and_bounded() {
        let dir = tempfile::tempdir().expect("tmp");
        let key = dir.path().join("k/key");
        write_new_secret(&key, b"s3cret").expect("write");
        assert_eq!(wide_bits(&key), None);
        assert_eq!(read_secret(&key, 64).expect("read"), b"s3cret");
        assert!(matches!(
            write_new_secret(&key, b"again"),
            Err(SecretFileError::Io {
                action: "create",
                ..
            })
        ));
        assert!(matches!(
            read_secret(&key, 3),
            Err(SecretFileError::NotAFile { .. })
        ));
        assert!(matches!(
            read_secret(dir.path(), 64),
            Err(SecretFileError::NotAFile { .. })
        ));
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        assert!(matches!(
            read_secret(&key, 64),
            Err(SecretFileError::TooOpen { mode: 0o640, .. })
        ));
    }
}
