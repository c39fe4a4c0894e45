//! Fuzz entry points for the profile imports: `.sswan` (the `sswan_parse` cargo-fuzz target in `fuzz/`) and
//! `.mobileconfig` (`mobileconfig_parse`), replayed on stable by `desktop/tests/fuzz_corpus.rs`. Not an API.
//! Must never panic; a failed assertion is a bug found.

use std::path::Path;

/// The bytes as a `.sswan` file (lossy UTF-8). What imports must be a profile that parses, with file names that
/// stay inside the target directory; the profile then goes through the `profile_parse` checks.
pub fn sswan_parse(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(imported) = crate::sswan::import_sswan(&text, Path::new("/nonexistent/ikelink-fuzz")) else { return };
    check_imported(&imported);
}

/// The bytes as a `.mobileconfig` (XML or binary property list, or a CMS wrapper around one), with the same
/// checks on what imports as [`sswan_parse`]. The bytes are also tried inside a DER CMS SignedData, as a signed
/// profile carries them, and must then import exactly as they did bare (less the warning about the signature).
pub fn mobileconfig_parse(data: &[u8]) {
    let dir = Path::new("/nonexistent/ikelink-fuzz");
    let bare = crate::mobileconfig::import_mobileconfig(data, dir);
    if let Ok(imported) = &bare {
        check_imported(imported);
    }
    if data.first() == Some(&0x30) {
        return; // already CMS-like: wrapping it again says nothing new
    }
    let signed = crate::mobileconfig::import_mobileconfig(&signed_data(data), dir);
    match (&bare, &signed) {
        (Ok(b), Ok(s)) => {
            assert_eq!(b.toml, s.toml, "a signed profile imports differently");
            assert_eq!(b.files, s.files, "a signed profile imports other files");
        }
        (Err(_), Err(_)) => {}
        _ => panic!("bare {:?} but signed {:?}", bare.as_ref().err(), signed.as_ref().err()),
    }
}

/// `content` in a minimal DER ContentInfo / SignedData (no signers).
fn signed_data(content: &[u8]) -> Vec<u8> {
    fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = body.len().to_be_bytes();
        let skip = len.iter().take_while(|b| **b == 0).count();
        match body.len() {
            n if n < 0x80 => out.push(n as u8),
            _ => {
                out.push(0x80 | (len.len() - skip) as u8);
                out.extend_from_slice(&len[skip..]);
            }
        }
        out.extend_from_slice(body);
        out
    }
    const PKCS7: [u8; 8] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07];
    let data_oid = tlv(0x06, &[&PKCS7[..], &[1]].concat());
    let encap = tlv(0x30, &[data_oid, tlv(0xa0, &tlv(0x04, content))].concat());
    let signed = tlv(0x30, &[tlv(0x02, &[1]), tlv(0x31, &[]), encap, tlv(0x31, &[])].concat());
    tlv(0x30, &[tlv(0x06, &[&PKCS7[..], &[2]].concat()), tlv(0xa0, &signed)].concat())
}

fn check_imported(imported: &crate::sswan::Imported) {
    for (name, _) in &imported.files {
        let safe = !name.is_empty()
            && !name.starts_with('.')
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        assert!(safe, "imported file name {name:?} could leave the target directory");
    }
    let safe_stem = imported.name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    assert!(safe_stem && !imported.name.is_empty(), "profile name {:?} is not a safe file stem", imported.name);
    if let Err(e) = ikelink::profile::Profile::parse(&imported.toml) {
        panic!("the imported profile does not parse: {e}\n{}", imported.toml);
    }
    ikelink::fuzzing::profile_parse(imported.toml.as_bytes());
}
