//! The layering rules of `src/`, checked on the source: the request
//! vocabulary sits at the bottom, and nothing below the SSH layer knows
//! SSH (see README "Layout").

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

/// Every `.rs` file below `dir`, with its text.
fn sources(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    if !dir.is_dir() {
        return out;
    }
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("read");
                out.push((path.display().to_string(), text));
            }
        }
    }
    out
}

fn module(name: &str) -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = sources(&root.join(name));
    let single = root.join(format!("{name}.rs"));
    if single.is_file() {
        files.push((
            single.display().to_string(),
            std::fs::read_to_string(&single).expect("read"),
        ));
    }
    assert!(!files.is_empty(), "no module {name}");
    files
}

/// `crate::X` module names a file refers to.
fn crate_paths(text: &str) -> Vec<String> {
    text.match_indices("crate::")
        .map(|(i, _)| {
            text[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

#[test]
fn nothing_below_the_ssh_layer_imports_it() {
    for m in [
        "request",
        "gateway",
        "policy",
        "config",
        "recording",
        "inventory",
        "aws",
    ] {
        for (path, text) in module(m) {
            assert!(
                !crate_paths(&text).iter().any(|p| p == "ssh"),
                "{path} refers to crate::ssh"
            );
        }
    }
}

#[test]
fn the_request_vocabulary_imports_only_the_config_and_leaves() {
    for (path, text) in module("request") {
        for p in crate_paths(&text) {
            // `untrusted` is a leaf: text escaping, importing nothing.
            assert!(
                ["config", "request", "untrusted"].contains(&p.as_str()),
                "{path} refers to crate::{p}"
            );
        }
    }
}

#[test]
fn config_and_recording_import_neither_policy_nor_gateway() {
    for m in ["config", "recording"] {
        for (path, text) in module(m) {
            for p in crate_paths(&text) {
                assert!(
                    !["policy", "gateway", "ssh", "request"].contains(&p.as_str()),
                    "{path} refers to crate::{p}"
                );
            }
        }
    }
}

#[test]
fn the_gateway_reaches_backends_only_through_the_carrier_seam() {
    for (path, text) in module("gateway") {
        assert!(
            !crate_paths(&text).iter().any(|p| p == "sshd"),
            "{path} refers to crate::sshd"
        );
    }
}

#[test]
fn leaf_helpers_import_nothing_of_the_crate() {
    for m in ["untrusted"] {
        for (path, text) in module(m) {
            let paths = crate_paths(&text);
            assert!(paths.is_empty(), "{path} refers to crate::{paths:?}");
        }
    }
}
