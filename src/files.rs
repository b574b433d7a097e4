//! Files routelb writes: its state file, BIRD's include, and temporary files for the daemons'
//! parsers. routelb often runs as root, so nothing here follows a symlink planted at the
//! destination or truncates a file that is not its own: temporary files are created
//! exclusively (`O_EXCL`, random names), and a file is replaced by renaming a complete,
//! synced temporary file over it, then syncing the directory, so a crash leaves the old file
//! or the new one, never an empty or half-written one. Also: which watched events are edits.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// An I/O error with the file it concerns, so "No space left on device" says where.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct FileError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl FileError {
    pub fn new(path: &Path, source: std::io::Error) -> FileError {
        FileError {
            path: path.to_path_buf(),
            source,
        }
    }
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Replaces `path` with `text`, durably: a new temporary file beside it (created exclusively,
/// so a planted symlink is never followed), written, given `mode`, synced, renamed over
/// `path` (which replaces a symlink there rather than writing through it), then the
/// directory synced so the rename survives a power loss.
pub fn write_durably(path: &Path, text: &str, mode: u32) -> Result<(), FileError> {
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("routelb");
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| FileError::new(dir, e))?;
    // The temporary file's random name means nothing to a user: name the file it replaces.
    let err = |e| FileError::new(path, e);
    tmp.write_all(text.as_bytes()).map_err(err)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path)
        .map_err(|e| FileError::new(path, e.error))?;
    sync_dir(dir)
}

/// Syncs a directory, so renames and creations in it are on disk.
pub fn sync_dir(dir: &Path) -> Result<(), FileError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| FileError::new(dir, e))
}

/// A temporary file for a daemon's parser (`vtysh --dryrun -f`, `bird -p -c`), removed when
/// dropped. Created exclusively under a random name in the temporary directory, and readable
/// by all: the daemons' tools may drop root before they read it.
pub struct TempFile(tempfile::TempPath);

impl TempFile {
    pub fn path(&self) -> &Path {
        &self.0
    }
}

pub fn temp_file(prefix: &str, text: &str) -> Result<TempFile, FileError> {
    let dir = std::env::temp_dir();
    let mut f = tempfile::Builder::new()
        .prefix(&format!("routelb-{prefix}-"))
        .suffix(".conf")
        .tempfile_in(&dir)
        .map_err(|e| FileError::new(&dir, e))?;
    let path = f.path().to_path_buf();
    let err = |e| FileError::new(&path, e);
    f.write_all(text.as_bytes()).map_err(err)?;
    f.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(err)?;
    Ok(TempFile(f.into_temp_path()))
}

/// Whether a watched event changes what a file or directory holds: created, written, renamed
/// or removed. Reads and metadata changes (atime) are not: reacting to them, a watcher whose
/// owner reads the watched files wakes itself up forever.
pub fn changes_content(kind: &notify::EventKind) -> bool {
    use notify::EventKind;
    use notify::event::{AccessKind, AccessMode, ModifyKind};
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) => true,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Modify(_) => true,
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Any | EventKind::Other => false,
    }
}

#[cfg(test)]
mod watch_tests {
    use super::changes_content;
    use notify::EventKind;
    use notify::event::{
        AccessKind, AccessMode, CreateKind, MetadataKind, ModifyKind, RemoveKind, RenameMode,
    };

    #[test]
    fn reads_and_metadata_are_not_edits() {
        for kind in [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Read),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)),
            EventKind::Any,
        ] {
            assert!(!changes_content(&kind), "{kind:?}");
        }
        for kind in [
            EventKind::Create(CreateKind::File),
            EventKind::Remove(RemoveKind::Folder),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Modify(ModifyKind::Any),
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
        ] {
            assert!(changes_content(&kind), "{kind:?}");
        }
    }
}
