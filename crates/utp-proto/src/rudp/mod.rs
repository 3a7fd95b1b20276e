//! rudp: batched reliable messages over UDP (docs/rudp.md is the wire specification).
//!
//! In progress (issue 6): the packet format is in [`wire::rudp`](crate::wire::rudp);
//! this module so far holds the loss-based congestion controller, [`NewReno`], that rudp plugs
//! into the shared [`Controller`](crate::congestion::Controller) trait, and the stateless
//! handshake cookies ([`CookieKey`]).

mod cookie;
mod newreno;

pub use cookie::{COOKIE_LEN, CookieError, CookieKey};
pub use newreno::{NewReno, NewRenoConfig};
