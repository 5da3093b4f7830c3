//! `[[users]]` and `[[user_ca]]` of `ssmgate.toml` as serde sees them,
//! and their validation into [`UserConfig`](super::UserConfig)s and
//! trusted user-CA keys.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use russh::keys::PublicKey;
use serde::Deserialize;

use super::raw::Invalid;
use super::{UserConfig, is_valid_user_name, parse_public_key_line, read_key_file};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUser {
    name: String,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    #[serde(default)]
    authorized_keys: Vec<String>,
    #[serde(default)]
    authorized_keys_file: Option<PathBuf>,
    #[serde(default)]
    run_as: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCa {
    public_key: Option<String>,
    public_key_file: Option<PathBuf>,
}

impl RawUser {
    pub(super) fn build(self, i: usize, base_dir: &Path) -> Result<UserConfig, Invalid> {
        let at = |key: &str| format!("users[{i}].{key}");
        if !is_valid_user_name(&self.name) {
            return Err((
                at("name"),
                format!(
                    "must match ^[a-z_][a-z0-9_.-]{{0,31}}$ (got \"{}\")",
                    self.name
                ),
            ));
        }
        let name = self.name;
        for (g, group) in self.groups.iter().enumerate() {
            let ok = (1..=64).contains(&group.len())
                && group
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
            if !ok {
                return Err((
                    format!("users[{i}].groups[{g}]"),
                    format!(
                        "user {name}: group names are 1-64 of A-Z a-z 0-9 _ . - (got \"{group}\")"
                    ),
                ));
            }
        }
        for (key, value) in &self.attributes {
            let key_ok = key.len() <= 64
                && key.bytes().enumerate().all(|(n, b)| {
                    b.is_ascii_alphabetic() || b == b'_' || (n > 0 && b.is_ascii_digit())
                })
                && !key.is_empty();
            if !key_ok {
                return Err((
                    at("attributes"),
                    format!(
                        "user {name}: attribute names must match [A-Za-z_][A-Za-z0-9_]{{0,63}} (got \"{key}\")"
                    ),
                ));
            }
            if value.chars().count() > 256 || value.chars().any(char::is_control) {
                return Err((
                    format!("users[{i}].attributes.{key}"),
                    format!(
                        "user {name}: values must be at most 256 characters without control characters"
                    ),
                ));
            }
        }
        let mut keys = Vec::new();
        for (k, line) in self.authorized_keys.iter().enumerate() {
            let key = parse_public_key_line(line).map_err(|m| {
                (
                    format!("users[{i}].authorized_keys[{k}]"),
                    format!("user {name}: {m}"),
                )
            })?;
            keys.push(key);
        }
        if let Some(run_as) = &self.run_as
            && !is_valid_user_name(run_as)
        {
            return Err((
                at("run_as"),
                format!("user {name}: must match ^[a-z_][a-z0-9_.-]{{0,31}}$ (got \"{run_as}\")"),
            ));
        }
        let file = self.authorized_keys_file.map(|f| base_dir.join(f));
        if let Some(path) = &file {
            let more = read_key_file(path)
                .map_err(|m| (at("authorized_keys_file"), format!("user {name}: {m}")))?;
            keys.extend(more);
        }
        Ok(UserConfig {
            name,
            groups: self.groups,
            attributes: self.attributes,
            authorized_keys: keys,
            authorized_keys_file: file,
            run_as: self.run_as,
        })
    }
}

impl RawCa {
    pub(super) fn build(self, i: usize, base_dir: &Path) -> Result<Vec<PublicKey>, Invalid> {
        match (self.public_key, self.public_key_file) {
            (Some(line), None) => parse_public_key_line(&line)
                .map(|k| vec![k])
                .map_err(|m| (format!("user_ca[{i}].public_key"), m)),
            (None, Some(file)) => {
                let keys = read_key_file(&base_dir.join(file))
                    .map_err(|m| (format!("user_ca[{i}].public_key_file"), m))?;
                if keys.is_empty() {
                    return Err((
                        format!("user_ca[{i}].public_key_file"),
                        "holds no key".into(),
                    ));
                }
                Ok(keys)
            }
            _ => Err((
                format!("user_ca[{i}]"),
                "give exactly one of public_key or public_key_file".into(),
            )),
        }
    }
}
