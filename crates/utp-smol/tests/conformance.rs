//! The driver's conformance suite on smol (driver tasks on smol's global executor).

utp_driver::conformance_tests!(smol::block_on, utp_smol::SmolRuntime);
