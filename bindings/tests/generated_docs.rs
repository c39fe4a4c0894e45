//! The Rust doc comments of exported items become the Kotlin and Swift docs the app's developers read: no
//! rustdoc link may reach them (`[`X`]` resolves nowhere there, `(crate::...)` names Rust paths, and private
//! items such as constants are not in the bindings at all).

use std::path::Path;

/// The rustdoc-style links (`[`Name`]`, `[...](crate::...)`) in a generated file, with their line numbers.
fn rustdoc_links(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(start) = rest.find("[`") {
            let after = &rest[start + 2..];
            let Some(end) = after.find("`]") else { break };
            let link_target = &after[end + 2..];
            // `[`x` section](https://...)` and the like are links with a target, as in uniffi's own comments.
            if !after[..end].contains('`') && !link_target.starts_with("(http") {
                found.push((n + 1, line.trim().to_owned()));
            }
            rest = &after[end + 2..];
        }
        if line.contains("](crate::") || line.contains("](self::") || line.contains("](super::") {
            found.push((n + 1, line.trim().to_owned()));
        }
    }
    found
}

#[test]
fn generated_docs_carry_no_rustdoc_links() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("generated");
    for file in ["kotlin/uniffi/ikelink_ffi/ikelink_ffi.kt", "swift/ikelink_ffi.swift"] {
        let text = std::fs::read_to_string(root.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let links = rustdoc_links(&text);
        assert!(links.is_empty(), "{file}: rustdoc links in the generated docs: {links:#?}");
    }
}

#[test]
fn the_check_finds_rustdoc_links() {
    assert_eq!(rustdoc_links(" * waits at most [`DROP_DISCONNECT_WAIT`] for").len(), 1);
    assert_eq!(rustdoc_links(" * a [`VpnClient`](crate::VpnClient) has").len(), 2);
    assert!(rustdoc_links("// in the [`kotlin` section of the `uniffi.toml` file](https://x)").is_empty());
    assert!(rustdoc_links(" * plain `VpnEvent`s").is_empty());
}
