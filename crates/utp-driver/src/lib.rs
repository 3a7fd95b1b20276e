//! The one async driver for `utp-proto` state machines.
//!
//! One driver task per socket pumps one [`utp_proto::Machine`]: it receives batches of
//! datagrams, drains transmits, and sleeps until the machine's next deadline. Runtime
//! adapters (`utp-tokio`, `utp-async-std`, `utp-smol`) give it a timer, a spawner and a
//! socket. The driver itself arrives with the uTP engine; this crate currently only fixes
//! its place in the workspace.

pub use utp_proto;
