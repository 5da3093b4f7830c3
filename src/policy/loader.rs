//! Reading a policy directory into a validated, immutable [`PolicySnapshot`]:
//! `schema.cedarschema` plus every `*.cedar` file (sorted by name, not
//! recursive, hidden files skipped). Each policy gets its id (`@id("…")`,
//! else `<file stem>#<n>`), the set is validated strictly against the
//! schema, and the schema is checked against what ssmgate supplies. Every
//! problem is located (file, line, column, policy).
//!
//! Speed: Cedar evaluates every policy of the set it is given, scope
//! included. The snapshot therefore indexes policies by their action and
//! principal scopes and hands Cedar only those whose scope can match the
//! request: [`PolicySnapshot::slice`] (cached per user, groups and action).
//! A policy whose scope does not match is not satisfied and cannot error,
//! so decisions and diagnostics are the same as with the whole set. A slice
//! also knows whether any of its policies can observe `context.reason`;
//! when none can, the "would a reason help?" evaluation is skipped.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use cedar_policy::{
    ActionConstraint, Effect, EntityUid, Policy, PolicyId, PolicySet, PrincipalConstraint, Schema,
    ValidationMode, Validator,
};
use sha2::{Digest, Sha256};

use super::Action;
use super::entities::{Vocabulary, check_schema};
use super::error::{PolicyError, Problem, line_col, problem_from};

/// The schema's file name inside the policy directory.
pub const SCHEMA_FILE: &str = "schema.cedarschema";
/// Extension of policy files.
pub const POLICY_EXTENSION: &str = "cedar";
/// Longest accepted policy id.
const MAX_ID_CHARS: usize = 128;
/// Cached policy slices per snapshot before the cache is emptied.
const MAX_CACHED_SLICES: usize = 4096;

/// Which principals a policy's scope can match.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PrincipalScope {
    /// Any principal (or a scope this index does not understand: Cedar
    /// decides).
    Any,
    /// `principal == User::"x"` or `principal in User::"x"`.
    User(String),
    /// `principal in Group::"g"`.
    Group(String),
}

impl PrincipalScope {
    fn of(policy: &Policy) -> PrincipalScope {
        let of_uid = |uid: &EntityUid| match uid.type_name().to_string().as_str() {
            "User" => PrincipalScope::User(uid.id().unescaped().to_owned()),
            "Group" => PrincipalScope::Group(uid.id().unescaped().to_owned()),
            _ => PrincipalScope::Any,
        };
        match policy.principal_constraint() {
            PrincipalConstraint::Eq(uid) if uid.type_name().to_string() == "User" => {
                PrincipalScope::User(uid.id().unescaped().to_owned())
            }
            PrincipalConstraint::In(uid) => of_uid(&uid),
            PrincipalConstraint::IsIn(t, uid) if t.to_string() == "User" => of_uid(&uid),
            _ => PrincipalScope::Any,
        }
    }

    fn matches(&self, user: &str, groups: &[String]) -> bool {
        match self {
            PrincipalScope::Any => true,
            PrincipalScope::User(u) => u == user,
            PrincipalScope::Group(g) => groups.iter().any(|x| x == g),
        }
    }
}

/// Cache key of a slice: action, user name, sorted groups.
type SliceKey = (usize, String, Vec<String>);

/// A policy with what the index knows about it.
#[derive(Debug)]
struct Indexed {
    scope: PrincipalScope,
    /// Whether its text could observe `context.reason` (see
    /// [`observes_reason`]).
    reason: bool,
    policy: Policy,
}

/// The policies that concern one user and action.
#[derive(Debug)]
pub struct Slice {
    /// The policies to evaluate.
    pub set: PolicySet,
    /// Whether any of them could observe `context.reason`; when none can,
    /// adding a reason cannot change a decision.
    pub reason_matters: bool,
}

/// Whether a policy's source could observe the context's `reason`: it
/// names `reason` anywhere, or uses `context` other than by attribute
/// access (`context.x`, `context has x`), e.g. comparing whole records.
/// Conservative: a false positive only costs an evaluation.
fn observes_reason(text: &str) -> bool {
    if text.contains("reason") {
        return true;
    }
    let mut rest = text;
    while let Some(i) = rest.find("context") {
        let after = rest[i + "context".len()..].trim_start();
        if !(after.starts_with('.') || after.starts_with("has ")) {
            return true;
        }
        rest = &rest[i + "context".len()..];
    }
    false
}

/// What is known about one loaded policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyInfo {
    /// Its id.
    pub id: String,
    /// The file it came from.
    pub file: PathBuf,
    /// 1-based line where it starts (its first annotation).
    pub line: usize,
    /// `permit` or `forbid`.
    pub effect: Effect,
    /// Its `@message("…")`, if any.
    pub message: Option<String>,
    /// Its `@description("…")`, if any.
    pub description: Option<String>,
    /// Its `@run_as("…")`: the OS user sessions it permits run as.
    pub run_as: Option<String>,
}

/// A file's identity for change detection: path, modification time, size.
pub type FileStamp = (PathBuf, Option<SystemTime>, u64);

/// A validated policy set, ready for decisions; replaced whole on reload.
#[derive(Debug)]
pub struct PolicySnapshot {
    /// The directory it was read from.
    pub dir: PathBuf,
    /// The schema.
    pub schema: Schema,
    /// Every policy.
    pub set: PolicySet,
    /// Per action (indexed by [`Action::index`]): the policies whose action
    /// scope can match it, with their principal scope.
    by_action: [Vec<Indexed>; 4],
    /// Slices already built.
    slices: Mutex<HashMap<SliceKey, Arc<Slice>>>,
    /// Every policy, in load order (files by name, then position).
    pub policies: Vec<PolicyInfo>,
    /// Policy id → index in `policies`.
    index: HashMap<String, usize>,
    /// The policy files read (the schema excluded).
    pub files: Vec<PathBuf>,
    /// Validator and schema warnings, located when possible.
    pub warnings: Vec<String>,
    /// SHA-256 over the schema and every policy file (names and contents).
    pub digest: String,
    /// The files' stamps, taken before they were read.
    pub stamps: Vec<FileStamp>,
}

impl PolicySnapshot {
    /// The policy called `id`.
    pub fn info(&self, id: &str) -> Option<&PolicyInfo> {
        self.index.get(id).map(|&i| &self.policies[i])
    }

    /// Load-order position of `id` (unknown ids last).
    pub fn position(&self, id: &str) -> usize {
        self.index.get(id).copied().unwrap_or(usize::MAX)
    }

    /// The policies whose scope can match `user` (member of `groups`)
    /// doing `action`: evaluating these gives the same decision as
    /// evaluating the whole set.
    pub fn slice(&self, action: Action, user: &str, groups: &[String]) -> Arc<Slice> {
        let mut sorted = groups.to_vec();
        sorted.sort();
        sorted.dedup();
        let key = (action.index(), user.to_owned(), sorted);
        let mut cache = self.slices.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slice) = cache.get(&key) {
            return Arc::clone(slice);
        }
        let mut set = PolicySet::new();
        let mut reason_matters = false;
        for p in &self.by_action[action.index()] {
            if p.scope.matches(user, groups) {
                reason_matters |= p.reason;
                // Ids are unique in the snapshot, so adding cannot fail.
                let _ = set.add(p.policy.clone());
            }
        }
        let slice = Arc::new(Slice {
            set,
            reason_matters,
        });
        if cache.len() >= MAX_CACHED_SLICES {
            cache.clear();
        }
        cache.insert(key, Arc::clone(&slice));
        slice
    }
}

/// The schema path and the `*.cedar` files of `dir`, sorted by name.
pub fn list_files(dir: &Path) -> Result<(PathBuf, Vec<PathBuf>), PolicyError> {
    let io = |source| PolicyError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !name.starts_with('.')
            && path.extension().and_then(|e| e.to_str()) == Some(POLICY_EXTENSION)
            && path.is_file()
        {
            files.push(path);
        }
    }
    files.sort();
    Ok((dir.join(SCHEMA_FILE), files))
}

/// Stamps of the schema and policy files of `dir` (for change polling).
pub fn stamps(dir: &Path) -> Result<Vec<FileStamp>, PolicyError> {
    let (schema, files) = list_files(dir)?;
    Ok(std::iter::once(schema)
        .chain(files)
        .map(|path| {
            let meta = std::fs::metadata(&path).ok();
            let modified = meta.as_ref().and_then(|m| m.modified().ok());
            let len = meta.map_or(0, |m| m.len());
            (path, modified, len)
        })
        .collect())
}

/// Reads and validates `dir`.
pub fn load_dir(dir: &Path, vocab: &Vocabulary) -> Result<PolicySnapshot, PolicyError> {
    let stamps = stamps(dir)?;
    let (schema_path, files) = list_files(dir)?;
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|source| PolicyError::Io {
            path: path.to_owned(),
            source,
        })
    };
    let schema_text = read(&schema_path)?;
    let mut sources = Vec::with_capacity(files.len());
    for file in files {
        let text = read(&file)?;
        sources.push((file, text));
    }
    let mut snapshot = load_sources(dir, (&schema_path, &schema_text), &sources, vocab)?;
    snapshot.stamps = stamps;
    Ok(snapshot)
}

/// Validates a schema and policy files given as text (`files` are
/// `(path, contents)`, in load order).
pub fn load_sources(
    dir: &Path,
    schema: (&Path, &str),
    files: &[(PathBuf, String)],
    vocab: &Vocabulary,
) -> Result<PolicySnapshot, PolicyError> {
    let (schema_path, schema_text) = schema;
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let schema = match Schema::from_cedarschema_str(schema_text) {
        Ok((schema, warns)) => {
            warnings.extend(warns.map(|w| format!("{}: {w}", schema_path.display())));
            schema
        }
        Err(e) => {
            return Err(PolicyError::Invalid {
                problems: vec![problem_from(schema_path, schema_text, &e)],
            });
        }
    };
    if let Err(message) = check_schema(vocab, &schema) {
        problems.push(Problem::in_file(schema_path, message));
    }

    let mut set = PolicySet::new();
    let mut policies: Vec<PolicyInfo> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    // Policy id → (file index) for locating validation errors.
    let mut origin: HashMap<String, usize> = HashMap::new();
    for (n, (path, text)) in files.iter().enumerate() {
        let parsed = match PolicySet::from_str(text) {
            Ok(parsed) => parsed,
            Err(errs) => {
                problems.extend(errs.iter().map(|e| problem_from(path, text, e)));
                continue;
            }
        };
        if parsed.templates().next().is_some() {
            problems.push(Problem::in_file(
                path,
                "templates (policies with ?principal or ?resource) are not supported",
            ));
            continue;
        }
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("policy")
            .to_owned();
        // Parsed ids are policy0, policy1, … in source order.
        let mut in_file: Vec<_> = parsed
            .policies()
            .map(|p| {
                let k = p.id().to_string();
                let k = k
                    .strip_prefix("policy")
                    .and_then(|d| d.parse::<usize>().ok());
                (k.unwrap_or(usize::MAX), p)
            })
            .collect();
        in_file.sort_by_key(|(k, _)| *k);
        let mut cursor = 0usize;
        for (k, (_, policy)) in in_file.into_iter().enumerate() {
            let src = policy.to_string();
            let start = text
                .get(cursor..)
                .and_then(|rest| rest.find(src.trim()))
                .map(|i| cursor + i);
            if let Some(start) = start {
                cursor = start + src.trim().len();
            }
            let line = start.map_or(1, |s| line_col(text, s).0);
            let id = policy
                .annotation("id")
                .map(str::to_owned)
                .unwrap_or_else(|| format!("{stem}#{}", k + 1));
            let locate = |message: String| {
                let p = Problem::in_file(path, message).with_policy(id.clone());
                Problem {
                    line: Some(line),
                    column: Some(1),
                    ..p
                }
            };
            if id.is_empty()
                || id.chars().count() > MAX_ID_CHARS
                || id.chars().any(|c| c.is_control() || c.is_whitespace())
            {
                problems.push(locate(format!(
                    "@id must be 1-{MAX_ID_CHARS} characters without spaces or control characters"
                )));
                continue;
            }
            if let Some(&other) = index.get(&id) {
                let first: &PolicyInfo = &policies[other];
                problems.push(locate(format!(
                    "duplicate policy id (also {}:{})",
                    first.file.display(),
                    first.line
                )));
                continue;
            }
            let run_as = policy.annotation("run_as").map(str::to_owned);
            if let Some(user) = &run_as {
                if policy.effect() != Effect::Permit {
                    problems.push(locate(
                        "@run_as only applies to permit policies (the OS user of the sessions they permit)".to_owned(),
                    ));
                    continue;
                }
                if !crate::config::is_valid_user_name(user) {
                    problems.push(locate(format!(
                        "@run_as must be an OS user name matching ^[a-z_][a-z0-9_.-]{{0,31}}$ (got \"{}\")",
                        crate::untrusted::bounded(user)
                    )));
                    continue;
                }
            }
            let renamed = policy.new_id(PolicyId::new(&id));
            if let Err(e) = set.add(renamed) {
                problems.push(locate(e.to_string()));
                continue;
            }
            index.insert(id.clone(), policies.len());
            origin.insert(id.clone(), n);
            policies.push(PolicyInfo {
                id,
                file: path.clone(),
                line,
                effect: policy.effect(),
                message: policy.annotation("message").map(str::to_owned),
                description: policy.annotation("description").map(str::to_owned),
                run_as,
            });
        }
    }

    if problems.is_empty() {
        let result = Validator::new(schema.clone()).validate(&set, ValidationMode::Strict);
        let locate = |id: &PolicyId, diag: &dyn miette::Diagnostic| {
            let id = id.to_string();
            match origin.get(&id).and_then(|&n| files.get(n)) {
                Some((path, text)) => problem_from(path, text, diag).with_policy(id),
                None => Problem::in_file(dir, super::error::describe(diag)).with_policy(id),
            }
        };
        // Cedar reports a problem once per action the policy applies to:
        // report it once.
        let per_action = regex::Regex::new(r#" for Action::"[A-Za-z0-9_]+""#).ok();
        let mut seen = std::collections::HashSet::new();
        let mut once = |mut p: Problem| {
            if let Some(re) = &per_action {
                p.message = re.replace_all(&p.message, "").into_owned();
            }
            seen.insert(p.to_string()).then_some(p)
        };
        for e in result.validation_errors() {
            problems.extend(once(locate(e.policy_id(), e)));
        }
        for w in result.validation_warnings() {
            warnings.extend(once(locate(w.policy_id(), w)).map(|p| p.to_string()));
        }
    }
    if !problems.is_empty() {
        return Err(PolicyError::Invalid { problems });
    }

    let by_action = Action::ALL.map(|action| {
        let uid = vocab.action(action);
        set.policies()
            .filter(|policy| match policy.action_constraint() {
                ActionConstraint::Any => true,
                ActionConstraint::Eq(a) => &a == uid,
                ActionConstraint::In(list) => list.iter().any(|a| a == uid),
            })
            .map(|policy| Indexed {
                scope: PrincipalScope::of(policy),
                reason: observes_reason(&policy.to_string()),
                policy: policy.clone(),
            })
            .collect()
    });

    let mut hash = Sha256::new();
    for (path, text) in std::iter::once((schema_path, schema_text))
        .chain(files.iter().map(|(p, t)| (p.as_path(), t.as_str())))
    {
        hash.update(path.to_string_lossy().as_bytes());
        hash.update([0]);
        hash.update(text.as_bytes());
        hash.update([0]);
    }
    Ok(PolicySnapshot {
        dir: dir.to_owned(),
        schema,
        set,
        by_action,
        slices: Mutex::new(HashMap::new()),
        policies,
        index,
        files: files.iter().map(|(p, _)| p.clone()).collect(),
        warnings,
        digest: hex::encode(hash.finalize()),
        stamps: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::observes_reason;

    #[test]
    fn reason_observation_is_conservative() {
        for yes in [
            "permit (principal, action, resource) when { context has reason };",
            "permit (principal, action, resource) when { context[\"reason\"] == \"x\" };",
            "permit (principal, action, resource) when { context == {\"a\": 1} };",
            "permit (principal, action, resource) when { [context].contains(principal) };",
            "@message(\"give a reason\") forbid (principal, action, resource);",
        ] {
            assert!(observes_reason(yes), "{yes}");
        }
        for no in [
            "permit (principal, action, resource);",
            "permit (principal, action, resource) when { context.hour < 8 && context has parameters };",
            "permit (principal, action, resource) when { context . document == \"x\" };",
        ] {
            assert!(!observes_reason(no), "{no}");
        }
    }
}
