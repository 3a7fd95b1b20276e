#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| utp_proto::fuzzing::rudp_endpoint(data));
