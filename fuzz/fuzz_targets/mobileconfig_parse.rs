#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ikelink_desktop::fuzzing::mobileconfig_parse(data));
