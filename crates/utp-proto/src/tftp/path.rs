//! Request filenames checked into safe relative paths.
//!
//! A TFTP request names its file with any bytes but NUL. Before a server touches its disk,
//! [`RequestPath::parse`] turns those bytes into a path **relative to the served root**,
//! made of plain components, or refuses them with a [`PathError`] naming the first thing
//! wrong. This is the first of two layers: the server then opens the path relative to an
//! open handle on the root directory with an API that refuses to leave it (`..` or a
//! symbolic link pointing out), so that a name this layer lets through still cannot escape.
//! Confinement is decided by components, never by comparing path strings (a prefix check
//! lets `/srv/tftp-private` pass for `/srv/tftp`).
//!
//! # Policy
//!
//! In the order the checks run, the filename:
//!
//! 1. is at most [`MAX_PATH_LEN`] (4096) bytes long ([`PathError::TooLong`]);
//! 2. is valid UTF-8 ([`PathError::NotUtf8`]);
//! 3. has no NUL ([`PathError::Nul`]; one cannot arrive in a request, where NUL ends the
//!    filename, but the parser does not rely on that), no control character: C0
//!    (`\x00`-`\x1f`: newlines, escape sequences), DEL or C1 (`\u{80}`-`\u{9f}`)
//!    ([`PathError::ControlCharacter`]);
//! 4. has no backslash anywhere, the Windows separator ([`PathError::Backslash`]): this
//!    also refuses UNC names such as `\\server\share`;
//! 5. has no colon anywhere ([`PathError::Colon`]): drive letters (`C:\x`, `c:foo`) and
//!    NTFS alternate streams (`file:stream`);
//! 6. after **stripping every leading `/`**, is not empty ([`PathError::Empty`]). A leading
//!    slash is an alias for the root, as with tftp-hpa's `-s`: many PXE clients ask for
//!    `/pxelinux.0`, and `//server/share` simply becomes `server/share` under the root;
//! 7. has at most [`MAX_COMPONENTS`] (32) `/`-separated components
//!    ([`PathError::TooManyComponents`]), each of them:
//!    - non-empty ([`PathError::EmptyComponent`]): `a//b` and a trailing `/` are refused
//!      rather than collapsed, so one file has one name;
//!    - not `.` ([`PathError::CurrentDir`]), refused rather than dropped for the same
//!      reason;
//!    - not `..` ([`PathError::ParentDir`]), whatever it would resolve to (`a/..` included);
//!    - at most [`MAX_COMPONENT_LEN`] (255) bytes ([`PathError::ComponentTooLong`]);
//!    - not starting with [`UPLOAD_TEMP_PREFIX`] ([`PathError::Reserved`]), the prefix of
//!      the temporary files that uploads are written to before they are committed, so that
//!      no client can read or clobber an upload in progress.
//!
//! Deliberately **accepted**:
//!
//! - Any other UTF-8, spaces included (`file with spaces.txt`, `données.bin`). Unicode
//!   format characters (bidirectional overrides, zero-width joiners) are not controls and
//!   pass: log names with `{:?}`, which escapes them, if that matters.
//! - Names that only mean something to other software: `%2e%2e/x` is a directory literally
//!   called `%2e%2e` (nothing is percent-decoded), `~user` is not expanded (no shell), and
//!   `....` or `...` are ordinary names. Components ending in `.` or a space, and Windows
//!   device names (`NUL`, `CON`), are not refused: they are only special on Windows, where
//!   the server refuses anything but a regular file anyway.
//! - Hidden files (`.config`): whether they are served is up to what the root holds.
//!
//! The [`Display`](fmt::Display) of a [`PathError`] says what is wrong with the name and
//! never repeats it, nor anything about the server: it is safe to send in an ERROR packet.
//!
//! # Examples
//!
//! ```
//! use utp_proto::tftp::path::{PathError, RequestPath};
//!
//! let path = RequestPath::parse(b"/boot/grub/grub.cfg")?;
//! assert_eq!(path.as_str(), "boot/grub/grub.cfg");
//! assert_eq!(path.components().collect::<Vec<_>>(), ["boot", "grub", "grub.cfg"]);
//! assert_eq!(path.file_name(), "grub.cfg");
//!
//! assert_eq!(RequestPath::parse(b"../etc/passwd"), Err(PathError::ParentDir));
//! assert_eq!(RequestPath::parse(b"C:\\Windows\\win.ini"), Err(PathError::Backslash));
//! # Ok::<(), PathError>(())
//! ```

use alloc::string::String;
use core::fmt;
use core::str::Split;

use thiserror::Error;

/// Longest filename accepted, in bytes, before leading slashes are stripped.
pub const MAX_PATH_LEN: usize = 4096;

/// Longest component accepted, in bytes (`NAME_MAX` on most file systems).
pub const MAX_COMPONENT_LEN: usize = 255;

/// Most components a filename may have.
pub const MAX_COMPONENTS: usize = 32;

/// Prefix of the temporary files uploads are written to; no request may name one.
///
/// The server creates `<UPLOAD_TEMP_PREFIX><unique>.tmp` next to the target and renames it
/// over the target when the upload is committed.
pub const UPLOAD_TEMP_PREFIX: &str = ".utp-tftp-upload.";

/// A requested filename that passed every check of the [module policy](self): a non-empty
/// relative path of plain components, joined with `/`.
///
/// Its [`Display`](fmt::Display) and [`as_str`](Self::as_str) give the normalized form
/// (`boot/pxelinux.0` for a request of `/boot/pxelinux.0`).
#[derive(Clone, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct RequestPath {
    /// The components joined with `/`: no leading, trailing or double slash.
    path: String,
}

impl RequestPath {
    /// Checks a filename from an RRQ or WRQ against the [module policy](self).
    ///
    /// # Errors
    ///
    /// A [`PathError`] naming the first rule the filename breaks, in the order the module
    /// documentation lists them.
    pub fn parse(filename: &[u8]) -> Result<Self, PathError> {
        if filename.len() > MAX_PATH_LEN {
            return Err(PathError::TooLong);
        }
        let name = core::str::from_utf8(filename).map_err(|_| PathError::NotUtf8)?;
        // One pass per rule, so that the error does not depend on where the characters are.
        if name.contains('\0') {
            return Err(PathError::Nul);
        }
        if name.contains(char::is_control) {
            return Err(PathError::ControlCharacter);
        }
        if name.contains('\\') {
            return Err(PathError::Backslash);
        }
        if name.contains(':') {
            return Err(PathError::Colon);
        }
        let relative = name.trim_start_matches('/');
        if relative.is_empty() {
            return Err(PathError::Empty);
        }
        for (index, component) in relative.split('/').enumerate() {
            if index == MAX_COMPONENTS {
                return Err(PathError::TooManyComponents);
            }
            check_component(component)?;
        }
        Ok(Self { path: String::from(relative) })
    }

    /// The components, from the root down to the file; never empty.
    pub fn components(&self) -> Components<'_> {
        Components(self.path.split('/'))
    }

    /// The last component: the name of the file itself.
    pub fn file_name(&self) -> &str {
        self.split_last().1
    }

    /// The components before the last, joined with `/`; `None` for a file directly in the
    /// root.
    pub fn parent(&self) -> Option<&str> {
        self.split_last().0
    }

    /// The normalized path: the components joined with `/`.
    pub fn as_str(&self) -> &str {
        &self.path
    }

    fn split_last(&self) -> (Option<&str>, &str) {
        match self.path.rsplit_once('/') {
            Some((parent, name)) => (Some(parent), name),
            None => (None, &self.path),
        }
    }
}

impl fmt::Display for RequestPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)
    }
}

impl AsRef<str> for RequestPath {
    fn as_ref(&self) -> &str {
        &self.path
    }
}

/// Iterator over the components of a [`RequestPath`], from [`RequestPath::components`].
#[derive(Clone, Debug)]
pub struct Components<'a>(Split<'a, char>);

impl<'a> Iterator for Components<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        self.0.next()
    }
}

impl DoubleEndedIterator for Components<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back()
    }
}

impl core::iter::FusedIterator for Components<'_> {}

/// Why a requested filename is refused; see the [module policy](self).
///
/// The messages say what is wrong without repeating the name: they are safe to send to the
/// client in an ERROR packet.
#[derive(Clone, Copy, Debug, Eq, Error, Hash, PartialEq)]
#[non_exhaustive]
pub enum PathError {
    /// The filename is longer than [`MAX_PATH_LEN`] bytes.
    #[error("filename is longer than 4096 bytes")]
    TooLong,
    /// The filename is not valid UTF-8.
    #[error("filename is not valid UTF-8")]
    NotUtf8,
    /// The filename contains a NUL byte.
    #[error("filename contains a NUL byte")]
    Nul,
    /// The filename contains a control character (C0, DEL or C1).
    #[error("filename contains a control character")]
    ControlCharacter,
    /// The filename contains a backslash (the Windows separator; also UNC names).
    #[error("filename contains a backslash: use '/' to separate directories")]
    Backslash,
    /// The filename contains a colon (a drive letter or an alternate data stream).
    #[error("filename contains a colon: drive letters and streams are not allowed")]
    Colon,
    /// The filename is empty, or only slashes.
    #[error("filename names no file")]
    Empty,
    /// The filename has more than [`MAX_COMPONENTS`] components.
    #[error("filename has more than 32 components")]
    TooManyComponents,
    /// A component is empty: a double slash or a trailing slash.
    #[error("filename has an empty component (a double or trailing '/')")]
    EmptyComponent,
    /// A component is `.`.
    #[error("filename has a '.' component")]
    CurrentDir,
    /// A component is `..`.
    #[error("filename has a '..' component")]
    ParentDir,
    /// A component is longer than [`MAX_COMPONENT_LEN`] bytes.
    #[error("filename has a component longer than 255 bytes")]
    ComponentTooLong,
    /// A component starts with [`UPLOAD_TEMP_PREFIX`]: it would name an upload in
    /// progress.
    #[error("filename names a reserved temporary upload file")]
    Reserved,
}

/// Checks one component of a name already free of separators and control characters.
fn check_component(component: &str) -> Result<(), PathError> {
    match component {
        "" => Err(PathError::EmptyComponent),
        "." => Err(PathError::CurrentDir),
        ".." => Err(PathError::ParentDir),
        c if c.len() > MAX_COMPONENT_LEN => Err(PathError::ComponentTooLong),
        c if c.starts_with(UPLOAD_TEMP_PREFIX) => Err(PathError::Reserved),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use alloc::string::ToString;
    use alloc::vec;
    use alloc::vec::Vec;

    use super::*;

    fn parse(name: &[u8]) -> Result<String, PathError> {
        RequestPath::parse(name).map(|path| path.to_string())
    }

    #[test]
    fn leading_slashes_are_stripped_and_nothing_else_changes() {
        assert_eq!(parse(b"pxelinux.0"), Ok("pxelinux.0".into()));
        assert_eq!(parse(b"/pxelinux.0"), Ok("pxelinux.0".into()));
        assert_eq!(parse(b"///pxelinux.0"), Ok("pxelinux.0".into()));
        assert_eq!(parse(b"/a/b"), Ok("a/b".into()));
    }

    #[test]
    fn parent_and_file_name_split_at_the_last_slash() {
        let path = RequestPath::parse(b"a/b/c").unwrap();
        assert_eq!(path.parent(), Some("a/b"));
        assert_eq!(path.file_name(), "c");
        assert_eq!(path.components().collect::<Vec<_>>(), vec!["a", "b", "c"]);
        assert_eq!(path.components().next_back(), Some("c"));
        let path = RequestPath::parse(b"/c").unwrap();
        assert_eq!(path.parent(), None);
        assert_eq!(path.file_name(), "c");
        assert_eq!(path.components().collect::<Vec<_>>(), vec!["c"]);
    }

    #[test]
    fn every_control_character_is_refused() {
        let controls = (0u32..0x20).chain([0x7f]).chain(0x80..0xa0);
        for code in controls {
            let c = char::from_u32(code).unwrap();
            let name = alloc::format!("a{c}b");
            let expected = if c == '\0' { PathError::Nul } else { PathError::ControlCharacter };
            assert_eq!(parse(name.as_bytes()), Err(expected), "U+{code:04X}");
        }
        // The first printable characters either side pass.
        assert!(parse("a b\u{a0}c~".as_bytes()).is_ok());
    }

    #[test]
    fn limits_are_inclusive() {
        let component = "x".repeat(MAX_COMPONENT_LEN);
        assert!(parse(component.as_bytes()).is_ok());
        let component = "x".repeat(MAX_COMPONENT_LEN + 1);
        assert_eq!(parse(component.as_bytes()), Err(PathError::ComponentTooLong));

        let deep = vec!["d"; MAX_COMPONENTS].join("/");
        assert!(parse(deep.as_bytes()).is_ok());
        let deeper = vec!["d"; MAX_COMPONENTS + 1].join("/");
        assert_eq!(parse(deeper.as_bytes()), Err(PathError::TooManyComponents));

        let long = "/".repeat(MAX_PATH_LEN - 1) + "x";
        assert_eq!(parse(long.as_bytes()), Ok("x".into()));
        let longer = "/".repeat(MAX_PATH_LEN) + "x";
        assert_eq!(parse(longer.as_bytes()), Err(PathError::TooLong));
    }

    #[test]
    fn the_reserved_prefix_is_refused_in_any_component_but_not_inside_one() {
        let temp = alloc::format!("{UPLOAD_TEMP_PREFIX}1.2.tmp");
        assert_eq!(parse(temp.as_bytes()), Err(PathError::Reserved));
        assert_eq!(parse(UPLOAD_TEMP_PREFIX.as_bytes()), Err(PathError::Reserved));
        let nested = alloc::format!("dir/{temp}");
        assert_eq!(parse(nested.as_bytes()), Err(PathError::Reserved));
        let below = alloc::format!("{temp}/x");
        assert_eq!(parse(below.as_bytes()), Err(PathError::Reserved));
        // A name merely containing the prefix, or a shorter prefix, is ordinary.
        let inside = alloc::format!("x{UPLOAD_TEMP_PREFIX}");
        assert!(parse(inside.as_bytes()).is_ok());
        assert!(parse(b".utp-tftp-upload").is_ok());
    }

    #[test]
    fn messages_never_repeat_the_name() {
        let name = b"../secret-name";
        let error = RequestPath::parse(name).unwrap_err();
        assert!(!error.to_string().contains("secret-name"));
    }
}
