//! The request filename policy against a table of hostile names and a table of names real
//! clients send.

use utp_proto::tftp::path::{
    MAX_COMPONENT_LEN, MAX_COMPONENTS, MAX_PATH_LEN, PathError, RequestPath, UPLOAD_TEMP_PREFIX,
};

/// Each hostile name with the error it must get.
const REFUSED: &[(&[u8], PathError)] = &[
    // Parent components, wherever they are.
    (b"../etc/passwd", PathError::ParentDir),
    (b"..", PathError::ParentDir),
    (b"/..", PathError::ParentDir),
    (b"/../x", PathError::ParentDir),
    (b"a/../../b", PathError::ParentDir),
    (b"a/..", PathError::ParentDir),
    (b"a/b/../../../../../../etc/shadow", PathError::ParentDir),
    (b"/../../../../etc/passwd", PathError::ParentDir),
    // Current-directory components.
    (b"./a", PathError::CurrentDir),
    (b"a/./b", PathError::CurrentDir),
    (b".", PathError::CurrentDir),
    (b"/.", PathError::CurrentDir),
    // Windows separators, UNC and drive letters.
    (b"..\\x", PathError::Backslash),
    (b"a\\..\\b", PathError::Backslash),
    (b"C:\\Windows\\win.ini", PathError::Backslash),
    (b"\\\\server\\share", PathError::Backslash),
    (b"\\\\?\\C:\\x", PathError::Backslash),
    (b"\\etc\\passwd", PathError::Backslash),
    (b"c:foo", PathError::Colon),
    (b"C:/Windows/win.ini", PathError::Colon),
    (b"/c:/x", PathError::Colon),
    (b"file.txt:stream", PathError::Colon),
    (b"file.txt::$DATA", PathError::Colon),
    // NUL and control characters (log and terminal injection).
    (b"foo\0bar", PathError::Nul),
    (b"a\nb", PathError::ControlCharacter),
    (b"a\rb", PathError::ControlCharacter),
    (b"a\tb", PathError::ControlCharacter),
    (b"\x1b[31m", PathError::ControlCharacter),
    (b"a\x7fb", PathError::ControlCharacter),
    ("a\u{85}b".as_bytes(), PathError::ControlCharacter),
    ("a\u{9b}31m".as_bytes(), PathError::ControlCharacter),
    // Not UTF-8: Latin-1, an overlong '/', a lone continuation byte, a truncated sequence,
    // an encoded surrogate.
    (b"donn\xe9es.bin", PathError::NotUtf8),
    (b"..\xc0\xafetc", PathError::NotUtf8),
    (b"\x80", PathError::NotUtf8),
    (b"a\xe2\x82", PathError::NotUtf8),
    (b"\xed\xa0\x80", PathError::NotUtf8),
    // Empty components are refused, not collapsed.
    (b"a//b", PathError::EmptyComponent),
    (b"a/", PathError::EmptyComponent),
    (b"....//", PathError::EmptyComponent),
    (b"boot//../x", PathError::EmptyComponent),
    // Nothing left.
    (b"", PathError::Empty),
    (b"/", PathError::Empty),
    (b"////", PathError::Empty),
];

/// Names real clients send, with the normalized path they must give.
const ACCEPTED: &[(&[u8], &str)] = &[
    (b"pxelinux.0", "pxelinux.0"),
    (b"/pxelinux.0", "pxelinux.0"),
    (b"//pxelinux.0", "pxelinux.0"),
    (b"boot/grub/grub.cfg", "boot/grub/grub.cfg"),
    (b"/boot/grub/grub.cfg", "boot/grub/grub.cfg"),
    (b"pxelinux.cfg/01-aa-bb-cc-dd-ee-ff", "pxelinux.cfg/01-aa-bb-cc-dd-ee-ff"),
    (b"file with spaces.txt", "file with spaces.txt"),
    ("données.bin".as_bytes(), "données.bin"),
    ("启动/映像.img".as_bytes(), "启动/映像.img"),
    (b".hidden", ".hidden"),
    (b"...", "..."),
    (b"....", "...."),
    (b"..a", "..a"),
    (b"a..", "a.."),
    (b"trailing.", "trailing."),
    (b"trailing ", "trailing "),
    (b"~root", "~root"),
    // Nothing is percent-decoded: this is a directory literally named `%2e%2e`.
    (b"%2e%2e/x", "%2e%2e/x"),
    (b"%2e%2e%2fetc%2fpasswd", "%2e%2e%2fetc%2fpasswd"),
    // `//server/share` is not UNC here: it is `server/share` under the root.
    (b"//server/share", "server/share"),
];

#[test]
fn hostile_names_are_refused_with_the_expected_error() {
    assert!(REFUSED.len() >= 25);
    for &(name, expected) in REFUSED {
        assert_eq!(RequestPath::parse(name), Err(expected), "{}", name.escape_ascii());
    }
}

#[test]
fn long_and_deep_names_are_refused() {
    let component = "x".repeat(300);
    assert_eq!(RequestPath::parse(component.as_bytes()), Err(PathError::ComponentTooLong));
    let nested = format!("a/{component}/b");
    assert_eq!(RequestPath::parse(nested.as_bytes()), Err(PathError::ComponentTooLong));

    let deep = vec!["d"; MAX_COMPONENTS + 1].join("/");
    assert_eq!(RequestPath::parse(deep.as_bytes()), Err(PathError::TooManyComponents));
    // Components are checked in order: a long climb fails at its first `..`.
    let climb = vec![".."; 100].join("/");
    assert_eq!(RequestPath::parse(climb.as_bytes()), Err(PathError::ParentDir));

    let long = vec!["y".repeat(MAX_COMPONENT_LEN); 20].join("/");
    assert!(long.len() > MAX_PATH_LEN);
    assert_eq!(RequestPath::parse(long.as_bytes()), Err(PathError::TooLong));
}

#[test]
fn temporary_upload_names_are_reserved() {
    for name in [
        format!("{UPLOAD_TEMP_PREFIX}12.3.tmp"),
        format!("/{UPLOAD_TEMP_PREFIX}12.3.tmp"),
        format!("dir/{UPLOAD_TEMP_PREFIX}12.3.tmp"),
        UPLOAD_TEMP_PREFIX.to_owned(),
    ] {
        assert_eq!(RequestPath::parse(name.as_bytes()), Err(PathError::Reserved), "{name}");
    }
}

#[test]
fn client_names_are_accepted_and_normalized() {
    for &(name, expected) in ACCEPTED {
        let path = RequestPath::parse(name)
            .unwrap_or_else(|e| panic!("{} refused: {e}", name.escape_ascii()));
        assert_eq!(path.as_str(), expected);
        assert_eq!(path.to_string(), expected);
        assert_eq!(path.components().collect::<Vec<_>>().join("/"), expected);
    }
}

#[test]
fn accepted_paths_have_only_plain_components() {
    // Whatever is accepted, every component is one a file system takes literally.
    for &(name, _) in ACCEPTED {
        let path = RequestPath::parse(name).unwrap();
        for component in path.components() {
            assert!(!component.is_empty() && component != "." && component != "..");
            assert!(!component.contains(['/', '\\', ':', '\0']));
        }
    }
}

#[test]
fn error_messages_are_safe_to_send() {
    for &(name, expected) in REFUSED {
        let message = expected.to_string();
        assert!(message.starts_with("filename "), "{message}");
        assert!(message.is_ascii() && !message.contains('\0'));
        if name.len() > 3 {
            assert!(!message.as_bytes().windows(name.len()).any(|w| w == name));
        }
    }
}
