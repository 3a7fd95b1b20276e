//! `utp decode`: print the fields of uTP packets given as hex.

use std::fmt::Write as _;

use utp_proto::wire::utp::{Extension, Packet};

/// Arguments of `utp decode`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// One or more packets, each as hex digits (spaces, colons and a leading 0x are allowed
    /// inside one argument).
    #[arg(required = true, value_name = "HEX")]
    packets: Vec<String>,
}

/// Decodes every packet; fails on the first that is not valid hex or not a valid packet.
pub(crate) fn run(args: &Args) -> Result<(), String> {
    for (i, text) in args.packets.iter().enumerate() {
        let bytes = parse_hex(text).map_err(|e| format!("packet {}: {e}", i + 1))?;
        let packet = Packet::parse(&bytes)
            .map_err(|e| format!("packet {}: not a valid uTP packet: {e}", i + 1))?;
        print!("{}", describe(&packet));
    }
    Ok(())
}

fn describe(packet: &Packet<'_>) -> String {
    let h = packet.header();
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = writeln!(
        out,
        "{} conn_id={} seq_nr={} ack_nr={} wnd_size={} timestamp_us={} timestamp_difference_us={} payload={} bytes",
        h.packet_type,
        h.connection_id,
        h.seq_nr,
        h.ack_nr,
        h.wnd_size,
        h.timestamp_us,
        h.timestamp_difference_us,
        packet.payload().len()
    );
    for ext in packet.extensions() {
        let _ = match ext {
            Extension::SelectiveAck(sack) => {
                let acked: Vec<String> =
                    sack.acked_seq_nrs(h.ack_nr).map(|s| s.to_string()).collect();
                writeln!(
                    out,
                    "  selective ack ({} bytes): acked seq_nrs [{}]",
                    sack.bitmask().len(),
                    acked.join(", ")
                )
            }
            Extension::ExtensionBits(bits) => {
                writeln!(out, "  extension bits ({} bytes): {}", bits.len(), hex(bits))
            }
            Extension::CloseReason(reason) => writeln!(out, "  close reason: {reason}"),
            Extension::Unknown { kind, data } => {
                writeln!(out, "  unknown extension {kind} ({} bytes): {}", data.len(), hex(data))
            }
            _ => writeln!(out, "  extension {}", ext.kind()),
        };
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let text = text.trim();
    let text = text.strip_prefix("0x").unwrap_or(text);
    let digits: Vec<char> =
        text.chars().filter(|c| !matches!(c, ' ' | ':' | '\n' | '\t')).collect();
    if let Some(bad) = digits.iter().find(|c| !c.is_ascii_hexdigit()) {
        return Err(format!(
            "`{bad}` is not a hex digit; give the packet as hex, e.g. 41002741..."
        ));
    }
    if digits.len() % 2 != 0 {
        return Err(format!(
            "odd number of hex digits ({}); every byte needs two digits",
            digits.len()
        ));
    }
    Ok(digits
        .chunks(2)
        .map(|pair| {
            let s: String = pair.iter().collect();
            u8::from_str_radix(&s, 16).unwrap_or_default()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_portal_state_vector_with_sack() {
        let bytes =
            parse_hex("21012741005e885e36a7e8830010000041a72e6d000401000080").expect("valid hex");
        let packet = Packet::parse(&bytes).expect("valid packet");
        let text = describe(&packet);
        assert!(text.starts_with("ST_STATE conn_id=10049 seq_nr=16807 ack_nr=11885"), "{text}");
        // Bit 0 is ack_nr + 2, bit 31 is ack_nr + 33.
        assert!(text.contains("acked seq_nrs [11887, 11918]"), "{text}");
    }

    #[test]
    fn hex_errors_say_what_to_fix() {
        assert!(parse_hex("0x41 00:27").is_ok());
        assert!(parse_hex("4").unwrap_err().contains("odd number"));
        assert!(parse_hex("zz").unwrap_err().contains("not a hex digit"));
    }
}
