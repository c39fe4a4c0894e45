#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ikelink::fuzzing::pq_exchange(data));
