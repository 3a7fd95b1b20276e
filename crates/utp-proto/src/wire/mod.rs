//! Pure parsing and emitting of each protocol's packets.
//!
//! Parsing follows "parse, don't validate": a parser checks every length once and returns a
//! typed view that borrows the input (no copies); emitting writes into a buffer the caller
//! owns. Parsers never panic, whatever the bytes.

pub mod rudp;
pub mod tftp;
pub mod utp;
