//! The sample profiles in examples/profiles parse (their secrets and certificates point to files that exist only
//! on a real installation, so only psk.toml is resolved completely).

use ikelink::profile::Profile;

#[test]
fn sample_profiles_parse() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            Profile::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
    }
    assert!(n >= 4, "found {n} profiles");
    let peap = Profile::load(&dir.join("eap-peap.toml")).unwrap();
    assert_eq!(peap.excluded().unwrap(), vec![("192.168.1.0".parse().unwrap(), 24)]);
    let psk = Profile::load(&dir.join("psk.toml")).unwrap().resolve().unwrap();
    assert_eq!(psk.gateway.to_string(), "203.0.113.2:500");
    // The post-quantum sample resolves completely: its ke1_ proposals and PPK are valid.
    Profile::load(&dir.join("post-quantum.toml")).unwrap().resolve().unwrap();
}
