//! The served directory: reads and uploads confined to it. See [`Root`].

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use cap_std::ambient_authority;
use cap_std::fs::{Dir, File, Metadata, OpenOptions};

use utp_proto::tftp::path::{PathError, RequestPath, UPLOAD_TEMP_PREFIX};
use utp_proto::wire::tftp::ErrorCode;

/// The directory a TFTP server serves, opened once; every access is confined to it.
///
/// It holds an open handle on the directory and resolves every request relative to it with
/// [`cap_std`], which refuses at the operating-system level any
/// path that would leave the directory: `..` past the root, absolute symbolic links, and
/// relative ones that climb out (with `openat2(RESOLVE_BENEATH)` on Linux, a careful
/// component-by-component walk elsewhere). The root's own absolute path is used once, to
/// open it, and never again: no string prefix checks, no joins, nothing to leak in a
/// message. Names reach this layer already checked by
/// [`RequestPath::parse`](utp_proto::tftp::path::RequestPath::parse), the first layer.
///
/// All file I/O is blocking; an async server calls it from a thread pool.
///
/// # Reads
///
/// [`Root::open_read`] serves **regular files only**: a directory, a FIFO, a socket or a
/// device is refused with [`Denial::NotRegularFile`] or [`Denial::Directory`] before it is
/// opened, so that a client cannot park the thread on a FIFO (the type is checked again on
/// the open file; only someone who can write into the root could swap a FIFO in between). Symbolic links inside the root that stay inside are followed; one that points out
/// is an access violation (ERROR 2), even if its target does not exist. A name that does not
/// exist, or goes through a file as if it were a directory, is not found (ERROR 1).
///
/// # Uploads
///
/// Writes are governed by a [`WritePolicy`], which is **read-only by default**; once
/// enabled it is **create-only** unless overwriting is allowed too. In the order the checks
/// run, [`Root::start_upload`]:
///
/// | situation | result | TFTP error |
/// |---|---|---|
/// | writes disabled | [`Denial::WritesDisabled`] | 2 access violation |
/// | announced size (`tsize`) above `max_upload` | [`RootError::TooLarge`] | 3 disk full |
/// | a directory in the name is missing or is a file | [`RootError::NotFound`] | 1 file not found |
/// | the target is a directory | [`Denial::Directory`] | 2 access violation |
/// | the target exists and overwriting is off | [`RootError::AlreadyExists`] | 6 file already exists |
/// | the target is a symbolic link (overwriting on) | [`Denial::Symlink`] | 2 access violation |
/// | the target is not a regular file (overwriting on) | [`Denial::NotRegularFile`] | 2 access violation |
/// | the target is missing and creating is off | [`Denial::CreateDisabled`] | 2 access violation |
///
/// A missing target with creation disabled is an access violation rather than "file not
/// found": the file's absence is not the problem, the policy is.
///
/// Directories are never created: every directory in the name must exist. An upload is
/// written to a temporary file in the target's directory, named
/// [`UPLOAD_TEMP_PREFIX`]`<pid>.<counter>.tmp` and created exclusively (`O_CREAT|O_EXCL`,
/// which never follows a link). Request names can never name such a file
/// ([`PathError::Reserved`]), so no client can read or clobber an upload in progress.
/// [`Upload::write_all`] enforces `max_upload` as data arrives: a block that would pass the
/// limit is refused whole and nothing of it is written. [`Upload::commit`] syncs the data,
/// checks the policy again (the target may have appeared meanwhile) and renames the
/// temporary file over the target: readers see the old content or the new, never a part.
/// Without overwriting, the new name is made with a hard link, which fails if the name
/// exists, so a file created by someone else between the check and the commit is not
/// clobbered (on a file system without hard links this falls back to check-then-rename).
/// An [`Upload`] dropped without a successful commit removes its temporary file, and the
/// target is untouched. A process killed mid-upload leaves its temporary file behind:
/// invisible to clients, removable by the operator.
///
/// Uploaded files get the default permissions (0666 less the umask on Unix), not those of
/// the file they replace.
///
/// # Error messages
///
/// [`RootError::tftp_code`] and [`RootError::tftp_message`] give the ERROR packet to send.
/// The messages are fixed strings (plus the upload limit): never a server path, never an
/// operating-system message. The [`Display`](std::fmt::Display) of a [`RootError`] is for
/// the server's log and may say more.
#[derive(Debug)]
pub struct Root {
    dir: Dir,
    policy: WritePolicy,
}

impl Root {
    /// Opens the directory at `path` (relative to the current directory, or absolute) to
    /// serve it under `policy`.
    ///
    /// # Errors
    ///
    /// Any error opening `path` as a directory.
    pub fn open(path: &Path, policy: WritePolicy) -> io::Result<Self> {
        let dir = Dir::open_ambient_dir(path, ambient_authority())?;
        Ok(Self::from_dir(dir, policy))
    }

    /// Serves a directory that is already open.
    pub fn from_dir(dir: Dir, policy: WritePolicy) -> Self {
        Self { dir, policy }
    }

    /// The write policy.
    pub fn policy(&self) -> &WritePolicy {
        &self.policy
    }

    /// Opens a regular file for reading, and returns it with its size in bytes.
    ///
    /// # Errors
    ///
    /// - [`RootError::NotFound`] if `name` does not exist (or a directory in it is a file);
    /// - [`RootError::AccessViolation`] if it is a directory ([`Denial::Directory`]), not a
    ///   regular file ([`Denial::NotRegularFile`]), or leads outside the root or is not
    ///   readable by the server ([`Denial::PermissionDenied`]);
    /// - [`RootError::Io`] for any other failure.
    pub fn open_read(&self, name: &RequestPath) -> Result<(std::fs::File, u64), RootError> {
        let path = relative_path(name);
        // Check the type before opening: opening a FIFO would block until a writer came.
        let metadata = self.dir.metadata(&path).map_err(RootError::from_io)?;
        check_readable(&metadata)?;
        let file = self.dir.open(&path).map_err(RootError::from_io)?;
        // And again on what was opened, in case the name was replaced in between.
        let metadata = file.metadata().map_err(RootError::from_io)?;
        check_readable(&metadata)?;
        Ok((file.into_std(), metadata.len()))
    }

    /// Starts an upload to `name`, checking the policy; `announced_size` is the client's
    /// `tsize` option, if it sent one.
    ///
    /// Nothing is visible under `name` until [`Upload::commit`].
    ///
    /// # Errors
    ///
    /// In the order of the table in [`Root`]'s documentation:
    /// [`RootError::AccessViolation`], [`RootError::TooLarge`], [`RootError::NotFound`],
    /// [`RootError::AlreadyExists`]; [`RootError::DiskFull`] or [`RootError::Io`] if the
    /// temporary file cannot be created.
    pub fn start_upload(
        &self,
        name: &RequestPath,
        announced_size: Option<u64>,
    ) -> Result<Upload, RootError> {
        let policy = self.policy;
        if !policy.allow_write {
            return Err(Denial::WritesDisabled.into());
        }
        if let (Some(size), Some(limit)) = (announced_size, policy.max_upload) {
            if size > limit {
                return Err(RootError::TooLarge { limit });
            }
        }
        let parent = match name.parent() {
            Some(parent) => self.dir.open_dir(parent),
            None => self.dir.try_clone(),
        }
        .map_err(RootError::from_io)?;
        let target = name.file_name().to_owned();
        check_target(&parent, &target, &policy)?;
        let (file, temp) = create_temp(&parent)?;
        Ok(Upload {
            parent,
            target,
            temp,
            file,
            temp_exists: true,
            written: 0,
            policy,
            failed: false,
        })
    }
}

/// What uploads (TFTP write requests) may do.
///
/// The [`Default`] is [`WritePolicy::read_only`].
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub struct WritePolicy {
    /// Whether uploads are accepted at all.
    pub allow_write: bool,
    /// Whether an upload may create a file that does not exist.
    pub allow_create: bool,
    /// Whether an upload may replace an existing file.
    pub allow_overwrite: bool,
    /// The largest upload accepted, in bytes; `None` for no limit.
    pub max_upload: Option<u64>,
}

impl WritePolicy {
    /// No uploads. Were writes enabled, they would be create-only.
    pub const fn read_only() -> Self {
        Self { allow_write: false, ..Self::create_only(None) }
    }

    /// Uploads may create new files, never replace existing ones, and are at most
    /// `max_upload` bytes.
    pub const fn create_only(max_upload: Option<u64>) -> Self {
        Self { allow_write: true, allow_create: true, allow_overwrite: false, max_upload }
    }
}

impl Default for WritePolicy {
    fn default() -> Self {
        Self::read_only()
    }
}

/// An upload in progress: a temporary file next to its target, renamed over the target by
/// [`commit`](Self::commit).
///
/// Dropping it without committing removes the temporary file and leaves the target as it
/// was.
#[derive(Debug)]
pub struct Upload {
    /// The directory of the target, held open so that the names below stay in it.
    parent: Dir,
    /// The target's name in `parent`.
    target: String,
    /// The temporary file's name in `parent`.
    temp: String,
    file: File,
    /// Whether `temp` still needs removing.
    temp_exists: bool,
    written: u64,
    policy: WritePolicy,
    /// Whether a write failed: the temporary file may hold part of a block.
    failed: bool,
}

impl Upload {
    /// Appends `data` to the temporary file.
    ///
    /// # Errors
    ///
    /// [`RootError::TooLarge`] if the upload would pass `max_upload`: nothing of `data` is
    /// written. [`RootError::DiskFull`] or [`RootError::Io`] if writing fails. After an
    /// error the upload cannot be committed; drop it.
    pub fn write_all(&mut self, data: &[u8]) -> Result<(), RootError> {
        if self.failed {
            return Err(RootError::UploadFailed);
        }
        let len = data.len() as u64;
        if let Some(limit) = self.policy.max_upload {
            if self.written.saturating_add(len) > limit {
                self.failed = true;
                return Err(RootError::TooLarge { limit });
            }
        }
        if let Err(e) = self.file.write_all(data) {
            self.failed = true;
            return Err(RootError::from_io(e));
        }
        self.written += len;
        Ok(())
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Makes the upload visible under its name, and returns its size in bytes.
    ///
    /// Syncs the data to disk, checks the policy again against the target as it is now,
    /// and renames the temporary file over the target (see [`Root`]'s documentation).
    ///
    /// # Errors
    ///
    /// [`RootError::UploadFailed`] if a write failed earlier; [`RootError::AlreadyExists`]
    /// if the target appeared and overwriting is off; [`RootError::AccessViolation`] if it
    /// became a directory, a link or a special file, or vanished and creating is off;
    /// [`RootError::DiskFull`] or [`RootError::Io`] if syncing or renaming fails. The
    /// target is left as it was and the temporary file is removed.
    pub fn commit(mut self) -> Result<u64, RootError> {
        if self.failed {
            return Err(RootError::UploadFailed);
        }
        self.file.sync_data().map_err(RootError::from_io)?;
        check_target(&self.parent, &self.target, &self.policy)?;
        if self.policy.allow_overwrite {
            self.rename()?;
        } else {
            self.link_no_replace()?;
        }
        Ok(self.written)
    }

    /// Renames the temporary file over the target, replacing it if it exists.
    fn rename(&mut self) -> Result<(), RootError> {
        self.parent.rename(&self.temp, &self.parent, &self.target).map_err(RootError::from_io)?;
        self.temp_exists = false;
        Ok(())
    }

    /// Gives the temporary file the target's name only if that name is free.
    fn link_no_replace(&mut self) -> Result<(), RootError> {
        match self.parent.hard_link(&self.temp, &self.parent, &self.target) {
            Ok(()) => {
                // The target is in place; a failure here only leaves the temporary name,
                // which `drop` tries again to remove.
                if self.parent.remove_file(&self.temp).is_ok() {
                    self.temp_exists = false;
                }
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(RootError::AlreadyExists),
            // No hard links here (FAT, some network file systems): check, then rename.
            Err(_) => match self.parent.symlink_metadata(&self.target) {
                Ok(_) => Err(RootError::AlreadyExists),
                Err(e) if e.kind() == io::ErrorKind::NotFound => self.rename(),
                Err(e) => Err(RootError::from_io(e)),
            },
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if self.temp_exists {
            // Nothing to report to: a leftover is invisible to clients (reserved prefix).
            let _ = self.parent.remove_file(&self.temp);
        }
    }
}

/// Why an access was refused: the reason of a [`RootError::AccessViolation`].
///
/// The messages are safe to send to the client.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Denial {
    /// The requested name broke the filename policy.
    #[error(transparent)]
    InvalidName(#[from] PathError),
    /// Uploads are disabled.
    #[error("uploads are disabled")]
    WritesDisabled,
    /// The upload would create a file, and creating is disabled.
    #[error("uploads may not create new files")]
    CreateDisabled,
    /// The name is a directory.
    #[error("is a directory")]
    Directory,
    /// The name is a FIFO, a socket, a device or anything else but a regular file.
    #[error("not a regular file")]
    NotRegularFile,
    /// An upload would replace a symbolic link.
    #[error("uploads do not replace symbolic links")]
    Symlink,
    /// The operating system refused: the name leads outside the served directory, or the
    /// server may not access it. The two are told apart only in the log, if at all.
    #[error("permission denied")]
    PermissionDenied,
}

/// Why a read or an upload failed, with the TFTP error to send for it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RootError {
    /// The file, or a directory in its name, does not exist (ERROR 1).
    #[error("file not found")]
    NotFound,
    /// The access is refused (ERROR 2).
    #[error("access violation: {0}")]
    AccessViolation(#[from] Denial),
    /// The upload's target exists and overwriting is disabled (ERROR 6).
    #[error("file already exists")]
    AlreadyExists,
    /// The upload is, or announced it would be, larger than `max_upload` (ERROR 3).
    #[error("upload larger than the {limit}-byte limit")]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The file system is full or a quota is exhausted (ERROR 3).
    #[error("disk full or quota exceeded")]
    DiskFull,
    /// An earlier write to this upload failed; it cannot be committed (ERROR 0).
    #[error("the upload failed earlier and cannot be committed")]
    UploadFailed,
    /// Any other I/O error (ERROR 0). Log it; its message is not sent.
    #[error("I/O error: {0}")]
    Io(#[source] io::Error),
}

impl RootError {
    /// The code of the ERROR packet to send.
    pub fn tftp_code(&self) -> ErrorCode {
        match self {
            Self::NotFound => ErrorCode::FileNotFound,
            Self::AccessViolation(_) => ErrorCode::AccessViolation,
            Self::AlreadyExists => ErrorCode::FileAlreadyExists,
            Self::TooLarge { .. } | Self::DiskFull => ErrorCode::DiskFull,
            Self::UploadFailed | Self::Io(_) => ErrorCode::NotDefined,
        }
    }

    /// The message of the ERROR packet to send: ASCII, without NUL, and never a path of
    /// the server or an operating-system message.
    pub fn tftp_message(&self) -> String {
        match self {
            Self::Io(_) => "server I/O error".to_owned(),
            Self::UploadFailed => "upload failed".to_owned(),
            Self::TooLarge { limit } => format!("file larger than the {limit}-byte upload limit"),
            other => other.to_string(),
        }
    }

    /// Classifies an error from the file system.
    ///
    /// | kind | error |
    /// |---|---|
    /// | `NotFound`, `NotADirectory` | [`RootError::NotFound`] |
    /// | `PermissionDenied` (includes leaving the root), `ReadOnlyFilesystem` | [`Denial::PermissionDenied`] |
    /// | `IsADirectory` | [`Denial::Directory`] |
    /// | `AlreadyExists` | [`RootError::AlreadyExists`] |
    /// | `StorageFull`, `QuotaExceeded`, `FileTooLarge` | [`RootError::DiskFull`] |
    /// | anything else | [`RootError::Io`] |
    fn from_io(e: io::Error) -> Self {
        use io::ErrorKind as Kind;
        match e.kind() {
            Kind::NotFound | Kind::NotADirectory => Self::NotFound,
            Kind::PermissionDenied | Kind::ReadOnlyFilesystem => Denial::PermissionDenied.into(),
            Kind::IsADirectory => Denial::Directory.into(),
            Kind::AlreadyExists => Self::AlreadyExists,
            Kind::StorageFull | Kind::QuotaExceeded | Kind::FileTooLarge => Self::DiskFull,
            _ => Self::Io(e),
        }
    }
}

impl From<PathError> for RootError {
    fn from(e: PathError) -> Self {
        Denial::InvalidName(e).into()
    }
}

/// Counter that makes temporary names unique within the process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// How many names [`create_temp`] tries before giving up (leftovers of an earlier process
/// with the same pid may hold some).
const TEMP_ATTEMPTS: u32 = 64;

/// The path of `name` relative to the root.
fn relative_path(name: &RequestPath) -> PathBuf {
    name.components().collect()
}

/// Refuses anything but a regular file for reading.
fn check_readable(metadata: &Metadata) -> Result<(), RootError> {
    if metadata.is_dir() {
        Err(Denial::Directory.into())
    } else if !metadata.is_file() {
        Err(Denial::NotRegularFile.into())
    } else {
        Ok(())
    }
}

/// Checks an upload's target against `policy`.
fn check_target(parent: &Dir, target: &str, policy: &WritePolicy) -> Result<(), RootError> {
    match parent.symlink_metadata(target) {
        Ok(metadata) => {
            if metadata.is_dir() {
                Err(Denial::Directory.into())
            } else if !policy.allow_overwrite {
                Err(RootError::AlreadyExists)
            } else if metadata.is_symlink() {
                Err(Denial::Symlink.into())
            } else if !metadata.is_file() {
                Err(Denial::NotRegularFile.into())
            } else {
                Ok(())
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if policy.allow_create {
                Ok(())
            } else {
                Err(Denial::CreateDisabled.into())
            }
        }
        Err(e) => Err(RootError::from_io(e)),
    }
}

/// Creates a new temporary file in `parent`, never opening an existing one.
fn create_temp(parent: &Dir) -> Result<(File, String), RootError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    let pid = std::process::id();
    let mut last = None;
    for _ in 0..TEMP_ATTEMPTS {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{UPLOAD_TEMP_PREFIX}{pid}.{n}.tmp");
        match parent.open_with(&name, &options) {
            Ok(file) => return Ok((file, name)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(RootError::from_io(e)),
        }
    }
    // Every name taken: not the client's doing, so not ERROR 6.
    let e = last.unwrap_or_else(|| io::Error::other("no temporary name tried"));
    Err(RootError::Io(io::Error::other(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The window between the commit's check and its link cannot be hit from outside: call
    /// the no-replace step directly on a name that exists.
    #[test]
    fn the_no_replace_link_never_clobbers() {
        let base = tempfile::tempdir().unwrap();
        let root = Root::open(base.path(), WritePolicy::create_only(None)).unwrap();
        let mut upload = root.start_upload(&RequestPath::parse(b"f").unwrap(), None).unwrap();
        upload.write_all(b"mine").unwrap();
        std::fs::write(base.path().join("f"), b"theirs").unwrap();
        assert!(matches!(upload.link_no_replace(), Err(RootError::AlreadyExists)));
        assert_eq!(std::fs::read(base.path().join("f")).unwrap(), b"theirs");
        drop(upload);
        let left: Vec<_> = std::fs::read_dir(base.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "only the other file is left");
    }
}
