//! The `async-std` adapter for `utp-driver`.
//!
//! async-std is discontinued upstream (RUSTSEC-2025-0052); new code should prefer
//! `utp-smol`. It will implement the driver's runtime trait (timer, spawner, UDP socket) on `async-std`.
//! Nothing is implemented yet: the driver's traits arrive with the driver.

pub use utp_driver;
