//! Stateless handshake cookies: how a rudp listener keeps no state for a starter until the
//! starter proves it receives at the address it claims.

use core::hash::{Hash, Hasher};
use core::time::Duration;

use siphasher::sip::SipHasher24;
use thiserror::Error;

use crate::Instant;

/// Length of a cookie on the wire: a 4-byte timestamp and an 8-byte keyed hash.
pub const COOKIE_LEN: usize = 12;

/// The listener's secret for cookies, with the previous one kept after a rotation so that
/// cookies issued just before it stay valid for their lifetime.
///
/// A cookie binds a timestamp (seconds of the listener's clock), the starter's address and
/// its connection id with SipHash-2-4 under a 128-bit key the application draws from its
/// entropy. Only the listener can make one, so a starter that echoes a valid cookie has
/// received the challenge at that address: nothing is allocated for it before.
#[derive(Clone, Debug)]
pub struct CookieKey {
    current: [u8; 16],
    previous: Option<[u8; 16]>,
    lifetime: Duration,
}

/// Why a cookie was not accepted.
#[derive(Clone, Copy, Debug, Eq, Error, PartialEq)]
#[non_exhaustive]
pub enum CookieError {
    /// Not [`COOKIE_LEN`] bytes.
    #[error("a cookie is {COOKIE_LEN} bytes")]
    Malformed,
    /// The hash does not match: not issued by this listener for this address and id.
    #[error("the cookie was not issued for this address and connection id")]
    Forged,
    /// Older than the lifetime, or from the future.
    #[error("the cookie has expired")]
    Expired,
}

impl CookieKey {
    /// A key from 16 bytes of the application's entropy; cookies live for `lifetime`.
    pub fn new(secret: [u8; 16], lifetime: Duration) -> Self {
        Self { current: secret, previous: None, lifetime }
    }

    /// Replaces the secret; cookies made with the old one stay valid until they expire.
    pub fn rotate(&mut self, secret: [u8; 16]) {
        self.previous = Some(core::mem::replace(&mut self.current, secret));
    }

    /// A cookie for the starter at `peer` whose connection id is `src_id`.
    pub fn issue(&self, now: Instant, peer: &impl Hash, src_id: u64) -> [u8; COOKIE_LEN] {
        let stamp = seconds(now);
        let mac = mac(&self.current, stamp, peer, src_id);
        let mut cookie = [0u8; COOKIE_LEN];
        cookie[..4].copy_from_slice(&stamp.to_be_bytes());
        cookie[4..].copy_from_slice(&mac.to_be_bytes());
        cookie
    }

    /// Checks a cookie echoed by the starter at `peer` with connection id `src_id`.
    ///
    /// # Errors
    ///
    /// [`CookieError`] saying why it is refused.
    pub fn verify(
        &self,
        now: Instant,
        peer: &impl Hash,
        src_id: u64,
        cookie: &[u8],
    ) -> Result<(), CookieError> {
        let cookie: &[u8; COOKIE_LEN] = cookie.try_into().map_err(|_| CookieError::Malformed)?;
        let stamp = u32::from_be_bytes([cookie[0], cookie[1], cookie[2], cookie[3]]);
        let mut tag = [0u8; 8];
        tag.copy_from_slice(&cookie[4..]);
        let tag = u64::from_be_bytes(tag);
        let genuine = core::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .any(|key| mac(key, stamp, peer, src_id) == tag);
        if !genuine {
            return Err(CookieError::Forged);
        }
        let age = u64::from(seconds(now)).checked_sub(u64::from(stamp));
        match age {
            Some(age) if Duration::from_secs(age) <= self.lifetime => Ok(()),
            _ => Err(CookieError::Expired),
        }
    }
}

/// The listener's clock in whole seconds, as stored in a cookie (wraps after 136 years).
fn seconds(now: Instant) -> u32 {
    (now.as_micros() / 1_000_000) as u32
}

fn mac(key: &[u8; 16], stamp: u32, peer: &impl Hash, src_id: u64) -> u64 {
    let mut hasher = SipHasher24::new_with_key(key);
    hasher.write_u32(stamp);
    peer.hash(&mut hasher);
    hasher.write_u64(src_id);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use core::net::SocketAddr;

    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn key() -> CookieKey {
        CookieKey::new([7; 16], Duration::from_secs(10))
    }

    #[test]
    fn a_cookie_is_valid_only_for_its_address_and_id() {
        let key = key();
        let now = Instant::from_millis(5_000);
        let cookie = key.issue(now, &addr(1000), 42);
        assert_eq!(key.verify(now, &addr(1000), 42, &cookie), Ok(()));
        assert_eq!(key.verify(now, &addr(1001), 42, &cookie), Err(CookieError::Forged));
        assert_eq!(key.verify(now, &addr(1000), 43, &cookie), Err(CookieError::Forged));
        let other = CookieKey::new([8; 16], Duration::from_secs(10));
        assert_eq!(other.verify(now, &addr(1000), 42, &cookie), Err(CookieError::Forged));
        let mut tampered = cookie;
        tampered[0] ^= 1; // an attempt to refresh the timestamp
        assert_eq!(key.verify(now, &addr(1000), 42, &tampered), Err(CookieError::Forged));
        assert_eq!(key.verify(now, &addr(1000), 42, &cookie[..11]), Err(CookieError::Malformed));
    }

    #[test]
    fn a_cookie_expires_after_its_lifetime() {
        let key = key();
        let cookie = key.issue(Instant::from_millis(5_000), &addr(1), 1);
        assert_eq!(key.verify(Instant::from_millis(15_999), &addr(1), 1, &cookie), Ok(()));
        assert_eq!(
            key.verify(Instant::from_millis(16_000), &addr(1), 1, &cookie),
            Err(CookieError::Expired)
        );
        assert_eq!(
            key.verify(Instant::from_millis(4_000), &addr(1), 1, &cookie),
            Err(CookieError::Expired),
            "from the future"
        );
    }

    #[test]
    fn cookies_survive_one_rotation() {
        let mut key = key();
        let now = Instant::from_millis(1_000);
        let old = key.issue(now, &addr(1), 1);
        key.rotate([9; 16]);
        assert_eq!(key.verify(now, &addr(1), 1, &old), Ok(()));
        let new = key.issue(now, &addr(1), 1);
        key.rotate([10; 16]);
        assert_eq!(key.verify(now, &addr(1), 1, &old), Err(CookieError::Forged));
        assert_eq!(key.verify(now, &addr(1), 1, &new), Ok(()));
    }
}
