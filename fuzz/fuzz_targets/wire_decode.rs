#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ikelink::fuzzing::wire_decode(data));
