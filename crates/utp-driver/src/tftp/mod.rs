//! TFTP server support: the served directory and its filesystem confinement.

mod root;

pub use root::*;
