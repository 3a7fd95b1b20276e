//! Option negotiation (RFC 2347): what a client asks for ([`OptionRequest`]), what a server
//! grants, how a client checks the server's OACK, and the result ([`Negotiated`]).

use alloc::string::String;
use alloc::vec::Vec;

use thiserror::Error;

use super::Config;
use crate::wire::tftp::{
    DEFAULT_BLKSIZE, MAX_DATA_LEN, Mode, OPTION_BLKSIZE, OPTION_TIMEOUT, OPTION_TSIZE,
    OPTION_WINDOWSIZE, Options, parse_decimal,
};

/// The largest `windowsize` this engine uses: half the 16-bit block-number space, so that an
/// acknowledgement maps to exactly one block across the wrap.
pub const MAX_WINDOWSIZE: u16 = 32768;

/// The options a client puts in its request. `None` leaves an option out.
#[derive(Clone, Copy, Debug, Default, Eq, Hash, PartialEq)]
pub struct OptionRequest {
    /// `blksize` (RFC 2348): 8 to 65464 bytes per block.
    pub blksize: Option<u16>,
    /// `windowsize` (RFC 7440): 1 to [`MAX_WINDOWSIZE`] (32768) blocks per acknowledgement.
    /// RFC 7440 allows up to 65535, but a window over half the block-number space could not
    /// tell a new acknowledgement from an old one after the wrap.
    pub windowsize: Option<u16>,
    /// `timeout` (RFC 2349): 1 to 255 seconds, the retransmission timeout both sides use.
    pub timeout: Option<u8>,
    /// `tsize` (RFC 2349). In a read request the value is ignored and 0 is sent, asking the
    /// server for the file's size; in a write request it announces the size.
    pub tsize: Option<u64>,
}

impl OptionRequest {
    /// No options: the request is plain RFC 1350.
    pub const NONE: Self = Self { blksize: None, windowsize: None, timeout: None, tsize: None };

    /// Whether no option is asked for.
    pub fn is_empty(&self) -> bool {
        *self == Self::NONE
    }

    /// Checks every value against its RFC's range.
    ///
    /// # Errors
    ///
    /// [`OptionRequestError`] naming the first option out of range.
    pub fn validate(&self) -> Result<(), OptionRequestError> {
        if let Some(blksize) = self.blksize {
            if !(8..=MAX_DATA_LEN as u16).contains(&blksize) {
                return Err(OptionRequestError::Blksize(blksize));
            }
        }
        if let Some(windowsize) = self.windowsize {
            if !(1..=MAX_WINDOWSIZE).contains(&windowsize) {
                return Err(OptionRequestError::Windowsize(windowsize));
            }
        }
        if self.timeout == Some(0) {
            return Err(OptionRequestError::Timeout);
        }
        Ok(())
    }

    /// The `(name, value)` pairs for the request, in the order they are sent.
    pub(crate) fn pairs(&self, read: bool) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        if let Some(blksize) = self.blksize {
            pairs.push((OPTION_BLKSIZE, alloc::format!("{blksize}")));
        }
        if let Some(windowsize) = self.windowsize {
            pairs.push((OPTION_WINDOWSIZE, alloc::format!("{windowsize}")));
        }
        if let Some(timeout) = self.timeout {
            pairs.push((OPTION_TIMEOUT, alloc::format!("{timeout}")));
        }
        if let Some(tsize) = self.tsize {
            pairs.push((OPTION_TSIZE, alloc::format!("{}", if read { 0 } else { tsize })));
        }
        pairs
    }
}

/// An option value a client may not ask for.
#[derive(Clone, Copy, Debug, Eq, Error, Hash, PartialEq)]
#[non_exhaustive]
pub enum OptionRequestError {
    /// `blksize` outside 8-65464.
    #[error("blksize must be between 8 and 65464 bytes, got {0}")]
    Blksize(u16),
    /// `windowsize` outside 1-32768.
    #[error("windowsize must be between 1 and 32768 blocks, got {0}")]
    Windowsize(u16),
    /// `timeout` 0.
    #[error("timeout must be between 1 and 255 seconds, got 0")]
    Timeout,
}

/// The options a transfer runs with once negotiation is over: what the OACK said, or the
/// RFC 1350 defaults when there was none.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub struct Negotiated {
    /// Data bytes per block. Default 512.
    pub blksize: u16,
    /// Blocks sent before waiting for an acknowledgement. Default 1 (lockstep).
    pub windowsize: u16,
    /// The agreed retransmission timeout in seconds, if one was negotiated.
    pub timeout: Option<u8>,
    /// The transfer size the server gave (read) or the client announced (write), if any.
    pub tsize: Option<u64>,
}

impl Default for Negotiated {
    fn default() -> Self {
        Self { blksize: DEFAULT_BLKSIZE, windowsize: 1, timeout: None, tsize: None }
    }
}

/// One option a server acknowledges, in the request's order.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum Granted {
    Blksize,
    Windowsize,
    Timeout,
    Tsize,
}

/// What a server grants for a request: the options it acknowledges (in request order) and
/// the values the transfer will use.
#[derive(Clone, Debug, Eq, PartialEq)]
pub(crate) struct Grant {
    pub(crate) negotiated: Negotiated,
    pub(crate) granted: Vec<Granted>,
}

impl Grant {
    /// The server's side of RFC 2347: acknowledge only options it understands, with values
    /// in range; lower `blksize` and `windowsize` to the configured maximum; ignore (leave
    /// out of the OACK) what is malformed or out of range, never echo it. `size` is the file's
    /// size for a read request, if known; the `tsize` of a write request is kept as announced.
    pub(crate) fn for_request(
        options: &Options<'_>,
        read: bool,
        mode: Mode,
        size: Option<u64>,
        config: &Config,
    ) -> Self {
        let mut negotiated = Negotiated::default();
        let mut granted = Vec::new();
        for option in options.iter() {
            let Ok(value) = parse_decimal(option.value) else { continue };
            if option.is(OPTION_BLKSIZE) {
                if value >= 8 {
                    negotiated.blksize = value.min(u64::from(config.max_blksize())) as u16;
                    granted.push(Granted::Blksize);
                }
            } else if option.is(OPTION_WINDOWSIZE) {
                if (1..=65535).contains(&value) {
                    negotiated.windowsize = value.min(u64::from(config.max_windowsize())) as u16;
                    granted.push(Granted::Windowsize);
                }
            } else if option.is(OPTION_TIMEOUT) {
                if (1..=255).contains(&value) {
                    negotiated.timeout = Some(value as u8);
                    granted.push(Granted::Timeout);
                }
            } else if option.is(OPTION_TSIZE) {
                // netascii sizes count converted bytes, which a server does not know without
                // reading the whole file: it leaves tsize out rather than give a wrong one.
                if read && value == 0 && mode == Mode::Octet {
                    // An empty file's `tsize 0` is left out: curl refuses an OACK that says
                    // `tsize 0` (it reads it as "no size"), and a client loses nothing.
                    if let Some(size) = size.filter(|size| *size > 0) {
                        negotiated.tsize = Some(size);
                        granted.push(Granted::Tsize);
                    }
                } else if !read {
                    negotiated.tsize = Some(value);
                    granted.push(Granted::Tsize);
                }
            }
        }
        Self { negotiated, granted }
    }

    /// The OACK's `(name, value)` pairs.
    pub(crate) fn pairs(&self) -> Vec<(&'static str, String)> {
        let n = &self.negotiated;
        self.granted
            .iter()
            .map(|granted| match granted {
                Granted::Blksize => (OPTION_BLKSIZE, alloc::format!("{}", n.blksize)),
                Granted::Windowsize => (OPTION_WINDOWSIZE, alloc::format!("{}", n.windowsize)),
                Granted::Timeout => {
                    (OPTION_TIMEOUT, alloc::format!("{}", n.timeout.unwrap_or_default()))
                }
                Granted::Tsize => (OPTION_TSIZE, alloc::format!("{}", n.tsize.unwrap_or_default())),
            })
            .collect()
    }
}

/// Checks a server's OACK against what the client asked for (RFC 2347: a server may only
/// acknowledge requested options; RFC 2348 and 7440: it may lower `blksize` and `windowsize`
/// but not raise them; RFC 2349: it must echo `timeout` unchanged).
///
/// # Errors
///
/// [`OackError`] naming what is wrong; the client then refuses with ERROR 8.
pub(crate) fn check_oack(
    requested: &OptionRequest,
    oack: &Options<'_>,
    read: bool,
) -> Result<Negotiated, OackError> {
    let mut negotiated = Negotiated::default();
    for option in oack.iter() {
        let value = parse_decimal(option.value);
        if option.is(OPTION_BLKSIZE) {
            let asked = requested.blksize.ok_or(OackError::Unrequested(Name::Blksize))?;
            match value {
                Ok(v) if (8..=u64::from(asked)).contains(&v) => negotiated.blksize = v as u16,
                _ => return Err(OackError::Value(Name::Blksize)),
            }
        } else if option.is(OPTION_WINDOWSIZE) {
            let asked = requested.windowsize.ok_or(OackError::Unrequested(Name::Windowsize))?;
            match value {
                Ok(v) if (1..=u64::from(asked)).contains(&v) => negotiated.windowsize = v as u16,
                _ => return Err(OackError::Value(Name::Windowsize)),
            }
        } else if option.is(OPTION_TIMEOUT) {
            let asked = requested.timeout.ok_or(OackError::Unrequested(Name::Timeout))?;
            match value {
                Ok(v) if v == u64::from(asked) => negotiated.timeout = Some(asked),
                _ => return Err(OackError::Value(Name::Timeout)),
            }
        } else if option.is(OPTION_TSIZE) {
            let announced = requested.tsize.ok_or(OackError::Unrequested(Name::Tsize))?;
            match value {
                Ok(v) if read => negotiated.tsize = Some(v),
                Ok(_) => negotiated.tsize = Some(announced),
                Err(_) => return Err(OackError::Value(Name::Tsize)),
            }
        } else {
            return Err(OackError::Unrequested(Name::Other));
        }
    }
    Ok(negotiated)
}

/// An option named in an [`OackError`].
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
#[non_exhaustive]
pub enum Name {
    /// `blksize`.
    Blksize,
    /// `windowsize`.
    Windowsize,
    /// `timeout`.
    Timeout,
    /// `tsize`.
    Tsize,
    /// An option this crate does not know.
    Other,
}

impl core::fmt::Display for Name {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Blksize => OPTION_BLKSIZE,
            Self::Windowsize => OPTION_WINDOWSIZE,
            Self::Timeout => OPTION_TIMEOUT,
            Self::Tsize => OPTION_TSIZE,
            Self::Other => "an unknown option",
        })
    }
}

/// Why a client refused a server's OACK (it answers with ERROR 8).
#[derive(Clone, Copy, Debug, Eq, Error, Hash, PartialEq)]
#[non_exhaustive]
pub enum OackError {
    /// The OACK acknowledges an option the client did not ask for.
    #[error("the server acknowledged {0}, which was not requested")]
    Unrequested(Name),
    /// The OACK's value is malformed, larger than requested, or (for `timeout`) changed.
    #[error("the server's value for {0} is not acceptable")]
    Value(Name),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(pairs: &[(&str, &str)], read: bool, size: Option<u64>) -> Grant {
        let options = Options::from_pairs(pairs).unwrap();
        Grant::for_request(&options, read, Mode::Octet, size, &Config::default())
    }

    #[test]
    fn a_server_lowers_large_values_and_ignores_bad_ones() {
        let g = grant(&[("BLKSIZE", "70000"), ("windowsize", "0"), ("timeout", "x")], true, None);
        assert_eq!(g.granted, [Granted::Blksize]);
        assert_eq!(g.negotiated.blksize, 65464);
        assert_eq!(g.negotiated.windowsize, 1);
        let g = grant(&[("blksize", "7"), ("windowsize", "1000"), ("foo", "1")], true, None);
        assert_eq!(g.granted, [Granted::Windowsize]);
        assert_eq!(g.negotiated.windowsize, 64);
    }

    #[test]
    fn tsize_is_answered_with_the_size_only_when_known() {
        let g = grant(&[("tsize", "0")], true, Some(1234));
        assert_eq!(g.pairs(), [(OPTION_TSIZE, String::from("1234"))]);
        assert!(grant(&[("tsize", "0")], true, None).granted.is_empty());
        assert!(grant(&[("tsize", "0")], true, Some(0)).granted.is_empty(), "curl refuses 0");
        let g = grant(&[("tsize", "99")], false, None);
        assert_eq!(g.negotiated.tsize, Some(99));
    }

    #[test]
    fn a_client_refuses_what_it_did_not_ask_for_or_larger_values() {
        let asked = OptionRequest { blksize: Some(1428), ..OptionRequest::NONE };
        let ok = Options::from_pairs(&[("blksize", "1024")]).unwrap();
        assert_eq!(check_oack(&asked, &ok, true).unwrap().blksize, 1024);
        let larger = Options::from_pairs(&[("blksize", "1429")]).unwrap();
        assert_eq!(check_oack(&asked, &larger, true), Err(OackError::Value(Name::Blksize)));
        let extra = Options::from_pairs(&[("windowsize", "4")]).unwrap();
        assert_eq!(check_oack(&asked, &extra, true), Err(OackError::Unrequested(Name::Windowsize)));
        let timeout = OptionRequest { timeout: Some(3), ..OptionRequest::NONE };
        let changed = Options::from_pairs(&[("timeout", "4")]).unwrap();
        assert_eq!(check_oack(&timeout, &changed, true), Err(OackError::Value(Name::Timeout)));
    }
}
