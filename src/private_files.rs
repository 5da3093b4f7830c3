//! Files that hold what users typed (the SQLite session database, its WAL,
//! the recorder's spool) are readable by their owner only: created 0600 in
//! directories created 0700, whatever the umask. Existing files and
//! directories that are wider are reported at start (a warning naming the
//! path and its mode), not silently changed: an operator may have meant it.

use std::fs::{DirBuilder, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

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
}
