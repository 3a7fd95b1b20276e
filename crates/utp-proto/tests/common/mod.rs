//! Helpers shared by the integration tests.

/// Decodes a hex string; spaces, newlines and `_` are ignored so vectors can be grouped by
/// field.
///
/// # Panics
///
/// On a character that is not a hex digit or an odd number of digits: the test itself is
/// wrong.
pub(crate) fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'_')
        .map(|b| match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            other => panic!("not a hex digit: {:?}", other as char),
        })
        .collect();
    assert!(digits.len() % 2 == 0, "odd number of hex digits in {text:?}");
    digits.chunks(2).map(|pair| pair[0] << 4 | pair[1]).collect()
}
