//! Sizes on the command line: `1048576`, `512K`, `100M`, `4G` (powers of 1024).

/// A size in bytes: digits, optionally followed by K, M, G or T (powers of 1024, either
/// case). `flag` names the option in the message when `text` is not a size.
pub(crate) fn parse(text: &str, flag: &str) -> Result<u64, String> {
    let message =
        || format!("{flag} must be a size in bytes like 1048576, 512K, 100M or 4G, got `{text}`");
    let (digits, shift) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(message()),
            };
            (&text[..i], shift)
        }
        _ => (text, 0),
    };
    let n: u64 = digits.parse().map_err(|_| message())?;
    n.checked_mul(1 << shift).ok_or_else(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse("4G", "--x"), Ok(4 << 30));
        assert_eq!(parse("512k", "--x"), Ok(512 << 10));
        assert_eq!(parse("1000", "--x"), Ok(1000));
        for bad in ["", "G", "4X", "-1", "99999999999T"] {
            assert!(parse(bad, "--x").is_err(), "{bad}");
        }
        assert_eq!(
            parse("4X", "--max-upload"),
            Err("--max-upload must be a size in bytes like 1048576, 512K, 100M or 4G, got `4X`"
                .into())
        );
    }
}
