#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ikelink::fuzzing::tcp_deframe(data));
