//! uTP on the driver: [`UtpSocket`] (many streams on one socket) and [`UtpStream`] (one
//! connection as an async byte stream).

pub(crate) mod socket;
pub(crate) mod state;
pub(crate) mod stream;
