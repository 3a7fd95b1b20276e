//! The driver's conformance suite on async-std.

utp_driver::conformance_tests!(async_std::task::block_on, utp_async_std::AsyncStdRuntime);
