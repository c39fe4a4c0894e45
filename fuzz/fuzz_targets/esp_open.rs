#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ikelink::fuzzing::esp_open(data));
