//! The `smol` adapter for `utp-driver`.
//!
//! It will implement the driver's runtime trait (timer, spawner, UDP socket) on `smol`.
//! Nothing is implemented yet: the driver's traits arrive with the driver.

pub use utp_driver;
