//! The served directory: reads and uploads stay inside it, follow the write policy, and
//! never leave partial or temporary files behind.
//!
//! Every test builds its own tree in a fresh temporary directory `base`:
//!
//! ```text
//! base/srv/                 the root
//! base/srv-private/secret   a sibling that a string-prefix check would let through
//! base/outside/             another directory out of the root
//! ```
//!
//! and, for every refused operation, checks that nothing changed anywhere under `base`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use tempfile::TempDir;
use utp_driver::tftp::{Denial, Root, RootError, Upload, WritePolicy};
use utp_driver::utp_proto::tftp::path::{PathError, RequestPath, UPLOAD_TEMP_PREFIX};
use utp_driver::utp_proto::wire::tftp::ErrorCode;

const SECRET: &[u8] = b"the secret outside the root";
const HELLO: &[u8] = b"hello from the root\n";

/// A served tree and the sibling directories around it.
struct Tree {
    base: TempDir,
}

impl Tree {
    fn new() -> Self {
        let base = tempfile::tempdir().unwrap();
        let tree = Self { base };
        fs::create_dir(tree.root()).unwrap();
        fs::create_dir(tree.private()).unwrap();
        fs::create_dir(tree.outside()).unwrap();
        fs::write(tree.private().join("secret"), SECRET).unwrap();
        fs::write(tree.outside().join("x.txt"), SECRET).unwrap();
        fs::write(tree.root().join("hello.txt"), HELLO).unwrap();
        fs::create_dir_all(tree.root().join("sub/deeper")).unwrap();
        fs::write(tree.root().join("sub/inner.txt"), b"inner").unwrap();
        tree
    }

    fn base(&self) -> &Path {
        self.base.path()
    }

    fn root(&self) -> PathBuf {
        self.base().join("srv")
    }

    /// `<root>-private`: shares the root's path as a string prefix.
    fn private(&self) -> PathBuf {
        self.base().join("srv-private")
    }

    fn outside(&self) -> PathBuf {
        self.base().join("outside")
    }

    fn serve(&self, policy: WritePolicy) -> Root {
        Root::open(&self.root(), policy).unwrap()
    }

    fn read(&self, relative: &str) -> Vec<u8> {
        fs::read(self.root().join(relative)).unwrap()
    }

    /// Every entry under `base`, links not followed, with its content for files.
    fn snapshot(&self) -> BTreeMap<PathBuf, Entry> {
        let mut entries = BTreeMap::new();
        walk(self.base(), self.base(), &mut entries);
        entries
    }

    /// Temporary upload files anywhere under `base`.
    fn temp_files(&self) -> Vec<PathBuf> {
        split_temp(self.snapshot()).1.into_keys().collect()
    }

    /// Runs `refused`, which must fail with `expected`, and checks that no file anywhere
    /// under `base` was created, changed or removed, except that the temporary file of a
    /// refused commit is gone.
    fn assert_refused<T>(
        &self,
        expected: Expected,
        refused: impl FnOnce() -> Result<T, RootError>,
    ) {
        let (before, temp_before) = split_temp(self.snapshot());
        let error = match refused() {
            Ok(_) => panic!("expected {expected:?}, got success"),
            Err(e) => e,
        };
        expected.check(&error);
        self.assert_safe_message(&error);
        let (after, temp_after) = split_temp(self.snapshot());
        assert_eq!(after, before, "{error} changed the file system");
        for temp in temp_after.keys() {
            assert!(temp_before.contains_key(temp), "{error} left {temp:?}");
        }
    }

    /// The ERROR message is sendable and says nothing about where the server's files are.
    fn assert_safe_message(&self, error: &RootError) {
        let message = error.tftp_message();
        assert!(!message.is_empty() && message.is_ascii() && !message.contains('\0'));
        for secret in [self.base().to_str().unwrap(), "srv", "private", "/tmp"] {
            assert!(!message.contains(secret), "{message:?} mentions {secret:?}");
        }
    }
}

#[derive(Debug, Eq, PartialEq)]
enum Entry {
    Dir,
    File(Vec<u8>),
    Link(PathBuf),
    Other,
}

/// Splits a snapshot into the other entries and the temporary upload files.
fn split_temp(
    entries: BTreeMap<PathBuf, Entry>,
) -> (BTreeMap<PathBuf, Entry>, BTreeMap<PathBuf, Entry>) {
    entries.into_iter().partition(|(path, _)| {
        !path.file_name().is_some_and(|n| n.to_string_lossy().starts_with(UPLOAD_TEMP_PREFIX))
    })
}

fn walk(base: &Path, dir: &Path, entries: &mut BTreeMap<PathBuf, Entry>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let kind = fs::symlink_metadata(&path).unwrap().file_type();
        let relative = path.strip_prefix(base).unwrap().to_owned();
        if kind.is_dir() {
            entries.insert(relative, Entry::Dir);
            walk(base, &path, entries);
        } else if kind.is_symlink() {
            entries.insert(relative, Entry::Link(fs::read_link(&path).unwrap()));
        } else if kind.is_file() {
            entries.insert(relative, Entry::File(fs::read(&path).unwrap()));
        } else {
            entries.insert(relative, Entry::Other);
        }
    }
}

/// The error a refused operation must give.
#[derive(Clone, Copy, Debug)]
enum Expected {
    NotFound,
    Denied(Denial),
    AlreadyExists,
    TooLarge(u64),
    UploadFailed,
}

impl Expected {
    fn check(self, error: &RootError) {
        let (matches, code) = match (self, error) {
            (Self::NotFound, RootError::NotFound) => (true, ErrorCode::FileNotFound),
            (Self::Denied(d), RootError::AccessViolation(e)) => {
                (d == *e, ErrorCode::AccessViolation)
            }
            (Self::AlreadyExists, RootError::AlreadyExists) => (true, ErrorCode::FileAlreadyExists),
            (Self::TooLarge(l), RootError::TooLarge { limit }) => {
                (l == *limit, ErrorCode::DiskFull)
            }
            (Self::UploadFailed, RootError::UploadFailed) => (true, ErrorCode::NotDefined),
            _ => (false, ErrorCode::NotDefined),
        };
        assert!(matches, "expected {self:?}, got {error:?}");
        assert_eq!(error.tftp_code(), code, "{error:?}");
    }
}

fn name(name: &str) -> RequestPath {
    RequestPath::parse(name.as_bytes()).unwrap()
}

fn read_all(root: &Root, request: &str) -> (Vec<u8>, u64) {
    let (file, size) = root.open_read(&name(request)).unwrap();
    let mut data = Vec::new();
    std::io::Read::read_to_end(&mut &file, &mut data).unwrap();
    (data, size)
}

fn upload(root: &Root, request: &str, data: &[u8]) -> Result<u64, RootError> {
    let mut upload = root.start_upload(&name(request), Some(data.len() as u64))?;
    upload.write_all(data)?;
    upload.commit()
}

fn writable(allow_create: bool, allow_overwrite: bool) -> WritePolicy {
    WritePolicy { allow_write: true, allow_create, allow_overwrite, max_upload: None }
}

#[cfg(unix)]
fn symlink(tree: &Tree, target: impl AsRef<Path>, link: &str) {
    std::os::unix::fs::symlink(target, tree.root().join(link)).unwrap();
}

// --- Reads ---------------------------------------------------------------------------------

#[test]
fn regular_files_are_read_with_their_size() {
    let tree = Tree::new();
    let root = tree.serve(WritePolicy::default());
    assert_eq!(read_all(&root, "hello.txt"), (HELLO.to_vec(), HELLO.len() as u64));
    assert_eq!(read_all(&root, "/hello.txt"), (HELLO.to_vec(), HELLO.len() as u64));
    assert_eq!(read_all(&root, "sub/inner.txt"), (b"inner".to_vec(), 5));
}

#[test]
fn missing_names_are_not_found() {
    let tree = Tree::new();
    let root = tree.serve(WritePolicy::default());
    for request in ["missing.txt", "sub/missing.txt", "missing/x", "hello.txt/x"] {
        tree.assert_refused(Expected::NotFound, || root.open_read(&name(request)));
    }
}

#[test]
fn directories_are_refused() {
    let tree = Tree::new();
    let root = tree.serve(WritePolicy::default());
    for request in ["sub", "sub/deeper", "/sub"] {
        tree.assert_refused(Expected::Denied(Denial::Directory), || root.open_read(&name(request)));
    }
}

#[cfg(unix)]
#[test]
fn links_inside_the_root_are_followed() {
    let tree = Tree::new();
    symlink(&tree, "hello.txt", "link-file");
    symlink(&tree, "sub", "link-dir");
    symlink(&tree, "../hello.txt", "sub/link-up");
    symlink(&tree, "missing.txt", "dangling");
    let root = tree.serve(WritePolicy::default());
    assert_eq!(read_all(&root, "link-file").0, HELLO);
    assert_eq!(read_all(&root, "link-dir/inner.txt").0, b"inner");
    assert_eq!(read_all(&root, "sub/link-up").0, HELLO);
    tree.assert_refused(Expected::NotFound, || root.open_read(&name("dangling")));
    tree.assert_refused(Expected::Denied(Denial::Directory), || root.open_read(&name("link-dir")));
}

#[cfg(unix)]
#[test]
fn links_out_of_the_root_are_access_violations() {
    let tree = Tree::new();
    let secret = tree.private().join("secret");
    symlink(&tree, "/etc/passwd", "passwd");
    symlink(&tree, "../srv-private/secret", "secret-relative");
    symlink(&tree, &secret, "secret-absolute");
    symlink(&tree, "../../srv-private/secret", "sub/secret-from-sub");
    symlink(&tree, tree.outside(), "outdir-absolute");
    symlink(&tree, "../outside", "outdir-relative");
    symlink(&tree, "/nonexistent/file", "dangling-out");
    symlink(&tree, "../srv-private/missing", "dangling-sibling");
    // Absolute links are refused even when they point back inside the root.
    symlink(&tree, tree.root().join("hello.txt"), "absolute-inside");
    let root = tree.serve(WritePolicy::default());
    for request in [
        "passwd",
        "secret-relative",
        "secret-absolute",
        "sub/secret-from-sub",
        "outdir-absolute/x.txt",
        "outdir-relative/x.txt",
        "outdir-relative",
        "dangling-out",
        "dangling-sibling",
        "absolute-inside",
    ] {
        tree.assert_refused(Expected::Denied(Denial::PermissionDenied), || {
            root.open_read(&name(request))
        });
    }
}

#[cfg(unix)]
#[test]
fn fifos_are_refused_without_blocking() {
    let tree = Tree::new();
    let fifo = tree.root().join("fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if !made.is_ok_and(|status| status.success()) {
        eprintln!("skipped: mkfifo is not available");
        return;
    }
    symlink(&tree, "fifo", "link-to-fifo");
    let root = tree.serve(WritePolicy::default());
    // Opening a FIFO for reading would block this thread until a writer came.
    for request in ["fifo", "link-to-fifo"] {
        tree.assert_refused(Expected::Denied(Denial::NotRegularFile), || {
            root.open_read(&name(request))
        });
    }
}

#[cfg(unix)]
#[test]
fn sockets_are_refused() {
    let tree = Tree::new();
    let _listener = std::os::unix::net::UnixListener::bind(tree.root().join("sock")).unwrap();
    let root = tree.serve(WritePolicy::default());
    tree.assert_refused(Expected::Denied(Denial::NotRegularFile), || root.open_read(&name("sock")));
}

#[test]
fn names_of_temporary_files_cannot_be_requested() {
    let tree = Tree::new();
    let root = tree.serve(writable(true, true));
    let mut upload = root.start_upload(&name("new.txt"), None).unwrap();
    upload.write_all(b"in progress").unwrap();
    let temp = tree.temp_files();
    assert_eq!(temp.len(), 1);
    let temp_name = temp[0].file_name().unwrap().to_str().unwrap();
    let error = RequestPath::parse(temp_name.as_bytes()).unwrap_err();
    assert_eq!(error, PathError::Reserved);
    let error = RootError::from(error);
    assert_eq!(error.tftp_code(), ErrorCode::AccessViolation);
    tree.assert_safe_message(&error);
    drop(upload);
    assert!(tree.temp_files().is_empty());
}

// --- Upload policy ------------------------------------------------------------------------

#[test]
fn the_default_policy_refuses_every_upload() {
    let tree = Tree::new();
    assert_eq!(WritePolicy::default(), WritePolicy::read_only());
    let root = tree.serve(WritePolicy::default());
    for request in ["new.txt", "hello.txt", "sub/new.txt", "missing/new.txt", "sub"] {
        tree.assert_refused(Expected::Denied(Denial::WritesDisabled), || {
            upload(&root, request, b"data")
        });
    }
}

#[test]
fn create_only_creates_and_never_overwrites() {
    let tree = Tree::new();
    let root = tree.serve(WritePolicy::create_only(None));
    assert_eq!(upload(&root, "new.txt", b"new").unwrap(), 3);
    assert_eq!(upload(&root, "/sub/deeper/new.txt", b"deep").unwrap(), 4);
    assert_eq!(tree.read("new.txt"), b"new");
    assert_eq!(tree.read("sub/deeper/new.txt"), b"deep");
    for request in ["hello.txt", "new.txt", "sub/inner.txt"] {
        tree.assert_refused(Expected::AlreadyExists, || upload(&root, request, b"clobber"));
    }
    assert_eq!(tree.read("hello.txt"), HELLO);
    assert!(tree.temp_files().is_empty());
}

#[test]
fn overwrite_without_create_only_replaces() {
    let tree = Tree::new();
    let root = tree.serve(writable(false, true));
    assert_eq!(upload(&root, "hello.txt", b"replaced").unwrap(), 8);
    assert_eq!(tree.read("hello.txt"), b"replaced");
    tree.assert_refused(Expected::Denied(Denial::CreateDisabled), || {
        upload(&root, "new.txt", b"new")
    });
}

#[test]
fn create_and_overwrite_both_allowed() {
    let tree = Tree::new();
    let root = tree.serve(writable(true, true));
    upload(&root, "hello.txt", b"replaced").unwrap();
    upload(&root, "new.txt", b"new").unwrap();
    assert_eq!(tree.read("hello.txt"), b"replaced");
    assert_eq!(tree.read("new.txt"), b"new");
    assert!(tree.temp_files().is_empty());
}

#[test]
fn writes_without_create_or_overwrite_are_all_refused() {
    let tree = Tree::new();
    let root = tree.serve(writable(false, false));
    tree.assert_refused(Expected::Denied(Denial::CreateDisabled), || {
        upload(&root, "new.txt", b"x")
    });
    tree.assert_refused(Expected::AlreadyExists, || upload(&root, "hello.txt", b"x"));
}

#[test]
fn uploads_never_create_directories_nor_replace_them() {
    let tree = Tree::new();
    let root = tree.serve(writable(true, true));
    for request in ["missing/new.txt", "sub/missing/new.txt", "hello.txt/new.txt"] {
        tree.assert_refused(Expected::NotFound, || upload(&root, request, b"x"));
    }
    for request in ["sub", "sub/deeper"] {
        tree.assert_refused(Expected::Denied(Denial::Directory), || upload(&root, request, b"x"));
    }
    let root = tree.serve(WritePolicy::create_only(None));
    tree.assert_refused(Expected::Denied(Denial::Directory), || upload(&root, "sub", b"x"));
}

#[cfg(unix)]
#[test]
fn uploads_never_write_through_links() {
    let tree = Tree::new();
    symlink(&tree, "../srv-private/secret", "secret-link");
    symlink(&tree, tree.private().join("secret"), "secret-absolute");
    symlink(&tree, "hello.txt", "inside-link");
    symlink(&tree, "../outside", "outdir");
    symlink(&tree, "sub", "subdir");
    symlink(&tree, "../srv-private/planted", "dangling-out");
    let root = tree.serve(writable(true, true));
    for request in ["secret-link", "secret-absolute", "inside-link", "dangling-out"] {
        tree.assert_refused(Expected::Denied(Denial::Symlink), || upload(&root, request, b"x"));
    }
    tree.assert_refused(Expected::Denied(Denial::PermissionDenied), || {
        upload(&root, "outdir/planted.txt", b"x")
    });
    // A directory link inside the root is followed.
    upload(&root, "subdir/via-link.txt", b"linked").unwrap();
    assert_eq!(tree.read("sub/via-link.txt"), b"linked");

    let root = tree.serve(WritePolicy::create_only(None));
    for request in ["secret-link", "inside-link", "dangling-out"] {
        tree.assert_refused(Expected::AlreadyExists, || upload(&root, request, b"x"));
    }
    assert_eq!(fs::read(tree.private().join("secret")).unwrap(), SECRET);
    assert!(!tree.private().join("planted").exists());
}

// --- Size limits --------------------------------------------------------------------------

#[test]
fn an_announced_size_over_the_limit_is_refused_before_anything_is_created() {
    let tree = Tree::new();
    let root = tree.serve(WritePolicy::create_only(Some(100)));
    tree.assert_refused(Expected::TooLarge(100), || root.start_upload(&name("big"), Some(101)));
    // At the limit, or unannounced, the upload starts.
    drop(root.start_upload(&name("big"), Some(100)).unwrap());
    drop(root.start_upload(&name("big"), None).unwrap());
    assert!(tree.temp_files().is_empty());
}

#[test]
fn data_over_the_limit_is_never_written_and_nothing_is_left() {
    let tree = Tree::new();
    let root = tree.serve(WritePolicy::create_only(Some(16)));
    let mut upload = root.start_upload(&name("big"), None).unwrap();
    upload.write_all(&[1; 10]).unwrap();
    let error = upload.write_all(&[2; 10]).unwrap_err();
    Expected::TooLarge(16).check(&error);
    tree.assert_safe_message(&error);
    assert_eq!(upload.written(), 10);
    // Not one byte of the refused block reached the disk.
    let temp = tree.temp_files();
    assert_eq!(temp.len(), 1);
    assert_eq!(fs::read(tree.base().join(&temp[0])).unwrap(), [1; 10]);
    // The upload is dead: no more writes, no commit of the truncated file.
    Expected::UploadFailed.check(&upload.write_all(&[3]).unwrap_err());
    tree.assert_refused(Expected::UploadFailed, || upload.commit());
    assert!(!tree.root().join("big").exists());
    assert!(tree.temp_files().is_empty());
}

#[test]
fn exactly_the_limit_is_accepted() {
    let tree = Tree::new();
    let root = tree.serve(WritePolicy::create_only(Some(16)));
    let mut upload = root.start_upload(&name("full"), Some(16)).unwrap();
    upload.write_all(&[7; 8]).unwrap();
    upload.write_all(&[7; 8]).unwrap();
    upload.write_all(&[]).unwrap();
    assert_eq!(upload.commit().unwrap(), 16);
    assert_eq!(tree.read("full"), [7; 16]);
}

// --- Commit and abort ---------------------------------------------------------------------

#[test]
fn the_target_changes_only_at_commit() {
    let tree = Tree::new();
    let root = tree.serve(writable(true, true));
    let mut upload = root.start_upload(&name("hello.txt"), None).unwrap();
    upload.write_all(b"new ").unwrap();
    assert_eq!(tree.read("hello.txt"), HELLO);
    upload.write_all(b"content").unwrap();
    assert_eq!(tree.read("hello.txt"), HELLO);
    // A reader holding the old file keeps the old content after the commit.
    let (old, _) = root.open_read(&name("hello.txt")).unwrap();
    assert_eq!(upload.commit().unwrap(), 11);
    assert_eq!(tree.read("hello.txt"), b"new content");
    let mut data = Vec::new();
    std::io::Read::read_to_end(&mut &old, &mut data).unwrap();
    assert_eq!(data, HELLO);
    assert!(tree.temp_files().is_empty());

    let mut upload = root.start_upload(&name("fresh.txt"), None).unwrap();
    upload.write_all(b"fresh").unwrap();
    assert!(!tree.root().join("fresh.txt").exists());
    upload.commit().unwrap();
    assert_eq!(tree.read("fresh.txt"), b"fresh");
}

#[test]
fn a_dropped_upload_leaves_no_trace_and_never_truncates() {
    let tree = Tree::new();
    let root = tree.serve(writable(true, true));
    let before = tree.snapshot();
    for request in ["hello.txt", "new.txt", "sub/deeper/new.txt"] {
        let mut upload: Upload = root.start_upload(&name(request), None).unwrap();
        upload.write_all(b"partial").unwrap();
        assert_eq!(tree.temp_files().len(), 1);
        drop(upload);
    }
    // An upload that never received a byte is dropped as well.
    drop(root.start_upload(&name("hello.txt"), None).unwrap());
    assert_eq!(tree.snapshot(), before);
}

#[test]
fn a_file_created_during_an_upload_is_not_clobbered() {
    let tree = Tree::new();
    let root = tree.serve(WritePolicy::create_only(None));
    let mut upload = root.start_upload(&name("race.txt"), None).unwrap();
    upload.write_all(b"mine").unwrap();
    fs::write(tree.root().join("race.txt"), b"theirs").unwrap();
    tree.assert_refused(Expected::AlreadyExists, || upload.commit());
    assert_eq!(tree.read("race.txt"), b"theirs");
    assert!(tree.temp_files().is_empty());
}

#[test]
fn the_policy_is_checked_again_at_commit() {
    let tree = Tree::new();
    // The target was deleted, and creating is off.
    let root = tree.serve(writable(false, true));
    let upload = root.start_upload(&name("hello.txt"), None).unwrap();
    fs::remove_file(tree.root().join("hello.txt")).unwrap();
    tree.assert_refused(Expected::Denied(Denial::CreateDisabled), || upload.commit());
    assert!(!tree.root().join("hello.txt").exists());

    // The target became a directory.
    let root = tree.serve(writable(true, true));
    let upload = root.start_upload(&name("soon-a-dir"), None).unwrap();
    fs::create_dir(tree.root().join("soon-a-dir")).unwrap();
    tree.assert_refused(Expected::Denied(Denial::Directory), || upload.commit());
    assert!(tree.temp_files().is_empty());
}

#[cfg(unix)]
#[test]
fn a_link_planted_during_an_upload_is_not_written_through() {
    let tree = Tree::new();
    let root = tree.serve(writable(true, true));
    let mut upload = root.start_upload(&name("planted"), None).unwrap();
    upload.write_all(b"mine").unwrap();
    symlink(&tree, "../srv-private/secret", "planted");
    tree.assert_refused(Expected::Denied(Denial::Symlink), || upload.commit());
    assert_eq!(fs::read(tree.private().join("secret")).unwrap(), SECRET);
    assert!(tree.temp_files().is_empty());
}

#[test]
fn concurrent_uploads_use_distinct_temporary_files() {
    let tree = Tree::new();
    let root = tree.serve(writable(true, true));
    let mut a = root.start_upload(&name("same.txt"), None).unwrap();
    let mut b = root.start_upload(&name("same.txt"), None).unwrap();
    a.write_all(b"first").unwrap();
    b.write_all(b"second").unwrap();
    assert_eq!(tree.temp_files().len(), 2);
    a.commit().unwrap();
    assert_eq!(tree.read("same.txt"), b"first");
    b.commit().unwrap();
    assert_eq!(tree.read("same.txt"), b"second");
    assert!(tree.temp_files().is_empty());
}

#[test]
fn io_errors_are_not_sent_to_the_client() {
    let error = RootError::Io(std::io::Error::other("/srv/tftp/secret/path is broken"));
    assert_eq!(error.tftp_code(), ErrorCode::NotDefined);
    assert!(!error.tftp_message().contains("/srv"));
    assert!(error.to_string().contains("/srv/tftp/secret/path"), "the log keeps the detail");
}

#[test]
fn opening_a_missing_root_fails() {
    let tree = Tree::new();
    assert!(Root::open(&tree.base().join("nope"), WritePolicy::default()).is_err());
    assert!(Root::open(&tree.root().join("hello.txt"), WritePolicy::default()).is_err());
}
