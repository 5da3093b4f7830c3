//! Tests for `ssmgate.toml` loading and validation.

use super::*;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{HashAlg, PrivateKey};

/// A deterministic Ed25519 public key line.
fn key_line(seed: u8, comment: &str) -> String {
    let mut key = PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]));
    key.set_comment(comment);
    key.public_key().to_openssh().unwrap()
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml_str(text, Path::new("/etc/ssmgate"))
}

fn diag(text: &str) -> Diagnostic {
    parse(text).unwrap_err().diagnostic().cloned().unwrap()
}

fn minimal() -> String {
    format!(
        "[[users]]\nname = \"alice\"\nauthorized_keys = [\"{}\"]\n",
        key_line(1, "a@l")
    )
}

#[test]
fn minimal_config_has_defaults() {
    let c = parse(&minimal()).unwrap();
    assert_eq!(c.server.listen, "127.0.0.1:2222".parse().unwrap());
    assert_eq!(
        c.server.host_key,
        Path::new("/etc/ssmgate/ssmgate_host_ed25519_key")
    );
    assert_eq!(c.server.login_grace, Duration::from_secs(120));
    assert_eq!(c.server.max_auth_tries, 6);
    assert_eq!(
        c.server.max_startups,
        MaxStartups {
            start: 16,
            rate: 30,
            full: 64
        }
    );
    assert_eq!(c.server.max_sessions_per_connection, 10);
    assert_eq!(c.server.max_sessions_per_user, 32);
    assert_eq!(c.server.max_startups_per_source, 10);
    assert_eq!(c.server.idle_timeout, Some(Duration::from_secs(900)));
    assert_eq!(c.server.max_session, Some(Duration::from_secs(28800)));
    assert_eq!(c.aws, AwsConfig::default());
    assert!(!c.justification.required);
    assert!(c.justification.pattern.is_match("abc"));
    assert!(!c.justification.pattern.is_match("ab"));
    assert_eq!(c.justification.grant_default.as_secs(), 3600);
    assert_eq!(c.justification.grant_max.as_secs(), 28_800);
    assert_eq!(c.aws.http_pool.max_idle_per_host, 32);
    assert_eq!(c.aws.http_pool.idle_timeout.as_secs(), 20);
    assert_eq!(c.sessions.default_document, DEFAULT_DOCUMENT);
    assert_eq!(c.sessions.allowed_documents.len(), 5);
    assert!(c.sessions.allows("AWS-StartSSHSession"));
    assert!(!c.sessions.allows("AWS-RunShellScript"));
    assert_eq!(c.inventory.cache, Duration::from_secs(30));
    assert_eq!(c.users.len(), 1);
    assert_eq!(c.user("alice").unwrap().authorized_keys.len(), 1);
    assert!(c.user("bob").is_none());
    assert!(c.user_cas.is_empty());
}

#[test]
fn full_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    std::fs::write(
        dir.path().join("keys/alice.pub"),
        format!(
            "# alice's other keys\n\n{}\n{}\n",
            key_line(2, "desk"),
            key_line(3, "phone with spaces")
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("ca.pub"), key_line(9, "ca2@corp") + "\n").unwrap();
    let text = format!(
        r#"
[server]
listen = "[::1]:2200"
host_key = "hk/host_key"
login_grace_secs = 30
max_auth_tries = 3
max_startups = 5
max_startups_per_source = 2
idle_timeout_secs = 0
max_session_secs = 60

[aws]
region = "eu-west-1"
endpoint = "http://127.0.0.1:4080"
session_role_arn = "arn:aws:iam::123456789012:role/ops/ssmgate-session"

[justification]
required = true
pattern = "^(INC|CHG)-[0-9]+ .{{3,}}"
hint = "a ticket id and a few words"

[sessions]
default_document = "AWS-StartInteractiveCommand"
allowed_documents = ["AWS-StartInteractiveCommand", "arn:aws:ssm:us-east-1:123456789012:document/Custom"]

[inventory]
cache_secs = 0

[[users]]
name = "alice"
groups = ["sre", "on-call"]
attributes = {{ team = "platform" }}
authorized_keys = ["{}"]
authorized_keys_file = "keys/alice.pub"

[[users]]
name = "bob.smith"

[[user_ca]]
public_key = "{}"

[[user_ca]]
public_key_file = "ca.pub"
"#,
        key_line(1, "alice@laptop"),
        key_line(8, "ca@corp")
    );
    let path = dir.path().join("ssmgate.toml");
    std::fs::write(&path, text).unwrap();
    let c = Config::load(&path).unwrap();
    assert_eq!(c.base_dir, dir.path());
    assert_eq!(c.server.listen, "[::1]:2200".parse().unwrap());
    assert_eq!(c.server.host_key, dir.path().join("hk/host_key"));
    assert_eq!(c.server.idle_timeout, None);
    assert_eq!(c.server.max_session, Some(Duration::from_secs(60)));
    assert_eq!(
        c.server.max_startups,
        MaxStartups {
            start: 5,
            rate: 100,
            full: 5
        },
        "a plain number is start = full"
    );
    assert_eq!(c.aws.region.as_deref(), Some("eu-west-1"));
    assert_eq!(c.aws.endpoint.as_deref(), Some("http://127.0.0.1:4080"));
    assert_eq!(
        c.aws.session_role_arn.as_deref(),
        Some("arn:aws:iam::123456789012:role/ops/ssmgate-session")
    );
    assert!(c.justification.required);
    assert!(c.justification.pattern.is_match("INC-12 disk full"));
    assert!(!c.justification.pattern.is_match("because"));
    assert_eq!(c.justification.hint, "a ticket id and a few words");
    assert!(
        c.sessions
            .allows("arn:aws:ssm:us-east-1:123456789012:document/Custom")
    );
    assert_eq!(c.inventory.cache, Duration::ZERO);
    let alice = c.user("alice").unwrap();
    assert_eq!(alice.groups, ["sre", "on-call"]);
    assert_eq!(alice.attributes["team"], "platform");
    assert_eq!(alice.authorized_keys.len(), 3);
    assert_eq!(
        alice.authorized_keys[2].comment().as_str_lossy(),
        "phone with spaces"
    );
    assert_eq!(
        alice.authorized_keys_file.as_deref(),
        Some(dir.path().join("keys/alice.pub").as_path())
    );
    assert!(c.user("bob.smith").unwrap().authorized_keys.is_empty());
    let cas: Vec<String> = c
        .user_cas
        .iter()
        .map(|k| k.fingerprint(HashAlg::Sha256).to_string())
        .collect();
    let expect = |seed| {
        PublicKey::from_openssh(&key_line(seed, ""))
            .unwrap()
            .fingerprint(HashAlg::Sha256)
            .to_string()
    };
    assert_eq!(cas, [expect(8), expect(9)]);
}

#[test]
fn users_are_required() {
    let d = diag("[server]\nlisten = \"127.0.0.1:22\"\n");
    assert!(d.message.contains("missing field `users`"), "{d}");
    let d = diag("users = []\n");
    assert_eq!(d.field.as_deref(), Some("users"));
    assert!(d.message.contains("at least one"), "{d}");
}

#[test]
fn bad_user_names_are_located() {
    let text = format!("{}\n[[users]]\nname = \"Bob\"\n", minimal());
    let d = diag(&text);
    assert_eq!(d.field.as_deref(), Some("users[1].name"));
    assert_eq!(d.position, Some((6, 8)));
    assert!(d.message.contains("\"Bob\""), "{d}");
    let d = diag(&format!("{}\n[[users]]\nname = \"alice\"\n", minimal()));
    assert!(d.message.contains("duplicate user name \"alice\""), "{d}");
    for bad in ["", "9x", "a b", "alice+web", &"a".repeat(33)] {
        assert!(!is_valid_user_name(bad), "{bad:?}");
    }
    for good in ["a", "_svc", "bob.smith", "x-1_2", &"a".repeat(32)] {
        assert!(is_valid_user_name(good), "{good:?}");
    }
}

#[test]
fn bad_keys_name_user_and_line() {
    let text = format!(
        "[[users]]\nname = \"alice\"\nauthorized_keys = [\n  \"{}\",\n  \"ssh-ed25519 AAAAnotbase64!! x\",\n]\n",
        key_line(1, "ok")
    );
    let d = diag(&text);
    assert_eq!(d.field.as_deref(), Some("users[0].authorized_keys[1]"));
    assert_eq!(d.position.map(|p| p.0), Some(5));
    assert!(
        d.message
            .starts_with("user alice: not a valid OpenSSH public key"),
        "{d}"
    );

    let text = format!(
        "[[users]]\nname = \"alice\"\nauthorized_keys = ['from=\"10.0.0.1\" {}']\n",
        key_line(1, "ok")
    );
    let d = diag(&text);
    assert!(d.message.contains("options are not supported"), "{d}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("k.pub"),
        format!("{}\n\nnonsense\n", key_line(1, "x")),
    )
    .unwrap();
    let text = "[[users]]\nname = \"carol\"\nauthorized_keys_file = \"k.pub\"\n";
    let err = Config::from_toml_str(text, dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("users[0].authorized_keys_file: user carol: "),
        "{err}"
    );
    assert!(
        err.contains("k.pub:3: not a valid OpenSSH public key"),
        "{err}"
    );
    let text = "[[users]]\nname = \"carol\"\nauthorized_keys_file = \"missing.pub\"\n";
    let err = Config::from_toml_str(text, dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot read") && err.contains("missing.pub"),
        "{err}"
    );
}

#[test]
fn bad_sections() {
    let m = minimal();
    let cases = [
        (
            "[server]\nlisten = \"localhost\"\n",
            "server.listen",
            "must be an IP address and port",
        ),
        (
            "[aws]\nhttp_pool_max_idle = 5000\n",
            "aws.http_pool_max_idle",
            "at most 1024",
        ),
        (
            "[aws]\nhttp_pool_idle_secs = 0\n",
            "aws.http_pool_idle_secs",
            "between 1 and 3600",
        ),
        (
            "[justification]\ngrant_max_secs = 700000\n",
            "justification.grant_max_secs",
            "at most 604800",
        ),
        (
            "[justification]\ngrant_default_secs = 30\n",
            "justification.grant_default_secs",
            "between 60 and grant_max_secs",
        ),
        (
            "[server]\nmax_auth_tries = 0\n",
            "server.max_auth_tries",
            "at least 1",
        ),
        (
            "[server]\nlogin_grace_secs = 0\n",
            "server.login_grace_secs",
            "at least 1",
        ),
        (
            "[server]\nmax_startups = \"10:30\"\n",
            "server.max_startups",
            "start:rate:full",
        ),
        (
            "[server]\nmax_startups = \"20:30:10\"\n",
            "server.max_startups",
            "start <= full",
        ),
        (
            "[server]\nmax_sessions_per_connection = 0\n",
            "server.max_sessions_per_connection",
            "at least 1",
        ),
        ("[aws]\nregion = \"US East\"\n", "aws.region", "us-east-1"),
        (
            "[aws]\nsession_role_arn = \"arn:aws:iam::123456789012:user/bob\"\n",
            "aws.session_role_arn",
            "IAM role ARN",
        ),
        (
            "[aws]\nsession_role_arn = \"arn:aws:iam:us-east-1:123:role/x\"\n",
            "aws.session_role_arn",
            "IAM role ARN",
        ),
        (
            "[aws]\nendpoint = \"127.0.0.1:4080\"\n",
            "aws.endpoint",
            "http://",
        ),
        (
            "[justification]\npattern = \"(unclosed\"\n",
            "justification.pattern",
            "not a valid regex",
        ),
        (
            "[sessions]\nallowed_documents = []\n",
            "sessions.allowed_documents",
            "at least one",
        ),
        (
            "[sessions]\nallowed_documents = [\"SSM-SessionManagerRunShell\", \"a b\"]\n",
            "sessions.allowed_documents[1]",
            "\"a b\"",
        ),
        (
            "[sessions]\ndefault_document = \"AWS-Other\"\n",
            "sessions.default_document",
            "not in sessions.allowed_documents",
        ),
        (
            "[sessions]\ndefault_document = \"\"\n",
            "sessions.default_document",
            "3-128",
        ),
    ];
    for (section, field, message) in cases {
        let d = diag(&format!("{m}\n{section}"));
        assert_eq!(d.field.as_deref(), Some(field), "{section}: {d}");
        assert!(d.message.contains(message), "{section}: {d}");
        assert!(d.position.is_some(), "{section}: {d}");
    }
}

#[test]
fn unknown_keys_and_types() {
    let d = diag(&format!("{}[server]\nlisen = \"x\"\n", minimal()));
    assert!(d.message.contains("unknown field `lisen`"), "{d}");
    assert_eq!(d.field.as_deref(), Some("server.lisen"));
    assert_eq!(d.position.map(|p| p.0), Some(5));
    let d = diag(&format!("shell = 1\n{}", minimal()));
    assert!(d.message.contains("unknown field `shell`"), "{d}");
    let d = diag(&format!("{}[inventory]\ncache_secs = \"30\"\n", minimal()));
    assert_eq!(d.field.as_deref(), Some("inventory.cache_secs"));
    let d = diag(&minimal().replace("[[users]]\n", "[[users]]\nfoo = 1\n"));
    assert_eq!(d.field.as_deref(), Some("users[0].foo"));
    assert!(d.message.contains("unknown field `foo`"), "{d}");
}

#[test]
fn user_details_are_checked() {
    let base = "[[users]]\nname = \"alice\"\n";
    let d = diag(&format!("{base}groups = [\"ok\", \"bad group\"]\n"));
    assert_eq!(d.field.as_deref(), Some("users[0].groups[1]"));
    let d = diag(&format!("{base}attributes = {{ \"9x\" = \"v\" }}\n"));
    assert_eq!(d.field.as_deref(), Some("users[0].attributes"));
    assert!(d.message.contains("\"9x\""), "{d}");
    let d = diag(&format!("{base}attributes = {{ team = \"a\\u0007b\" }}\n"));
    assert_eq!(d.field.as_deref(), Some("users[0].attributes.team"));
}

#[test]
fn user_ca_needs_exactly_one_source() {
    let d = diag(&format!("{}[[user_ca]]\n", minimal()));
    assert_eq!(d.field.as_deref(), Some("user_ca[0]"));
    assert!(d.message.contains("exactly one"), "{d}");
    let d = diag(&format!(
        "{}[[user_ca]]\npublic_key = \"{}\"\npublic_key_file = \"ca.pub\"\n",
        minimal(),
        key_line(4, "")
    ));
    assert!(d.message.contains("exactly one"), "{d}");
    let d = diag(&format!(
        "{}[[user_ca]]\npublic_key = \"ssh-ed25519\"\n",
        minimal()
    ));
    assert_eq!(d.field.as_deref(), Some("user_ca[0].public_key"));
}

#[test]
fn load_reports_file_name_and_io_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ssmgate.toml");
    std::fs::write(&path, "[[users]]\nname = \"X\"\n").unwrap();
    let err = Config::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("ssmgate.toml:2:8: users[0].name: must match"),
        "{err}"
    );
    let missing = Config::load(&dir.path().join("nope.toml")).unwrap_err();
    assert!(matches!(missing, ConfigError::Io { .. }));
}

#[test]
fn max_startups_drop_chance_rises_from_start_to_full() {
    let m = MaxStartups::parse("10:30:20").unwrap();
    assert_eq!(m.drop_percent(0), 0);
    assert_eq!(m.drop_percent(9), 0);
    assert_eq!(m.drop_percent(10), 30);
    assert_eq!(m.drop_percent(15), 65);
    assert_eq!(m.drop_percent(19), 93);
    assert_eq!(m.drop_percent(20), 100);
    assert_eq!(MaxStartups::parse("8").unwrap().drop_percent(7), 0);
    assert_eq!(MaxStartups::parse("8").unwrap().drop_percent(8), 100);
    assert!(MaxStartups::parse("0:30:10").is_err());
    assert!(MaxStartups::parse("5:0:10").is_err());
    assert!(MaxStartups::parse("a:b:c").is_err());
}

#[test]
fn recording_key_file_is_relative_to_the_config() {
    let base = Path::new("/etc/ssmgate");
    let c = Config::from_toml_str(&minimal(), base).unwrap();
    assert_eq!(c.recording.key_file, base.join("recording.key"));
    let text = format!("{}\n[recording]\nkey_file = \"keys/rec.key\"\n", minimal());
    let c = Config::from_toml_str(&text, base).unwrap();
    assert_eq!(c.recording.key_file, base.join("keys/rec.key"));
    let text = format!("{}\n[recording]\nkey_file = \"/srv/k\"\n", minimal());
    let c = Config::from_toml_str(&text, base).unwrap();
    assert_eq!(c.recording.key_file, Path::new("/srv/k"));
    let d = diag(&format!("{}\n[recording]\nkey_file = \"\"\n", minimal()));
    assert_eq!(d.field.as_deref(), Some("recording.key_file"), "{d}");
    assert!(d.message.contains("must not be empty"), "{d}");
}

#[test]
fn accounts_and_regions() {
    let c = parse(&format!(
        "{}[aws]\nregion = \"us-east-1\"\n\n[[aws.accounts]]\nname = \"prod\"\nrole_arn = \"arn:aws:iam::111111111111:role/ssmgate\"\nregions = [\"us-east-1\", \"eu-west-1\"]\n\n[[aws.accounts]]\nname = \"home\"\n",
        minimal()
    ))
    .unwrap();
    assert_eq!(c.aws.accounts.len(), 2);
    assert_eq!(c.aws.accounts[0].regions, ["us-east-1", "eu-west-1"]);
    assert_eq!(
        c.aws.accounts[0].role_arn.as_deref(),
        Some("arn:aws:iam::111111111111:role/ssmgate")
    );
    assert_eq!(
        c.aws.accounts[1].regions,
        ["us-east-1"],
        "aws.region by default"
    );
    assert_eq!(c.aws.accounts[1].role_arn, None);

    for (text, field, needle) in [
        (
            "[[aws.accounts]]\nname = \"Prod\"\nregions = [\"us-east-1\"]\n",
            "aws.accounts[0].name",
            "a-z 0-9",
        ),
        (
            "[[aws.accounts]]\nname = \"p\"\n",
            "aws.accounts[0].regions",
            "list the account's regions",
        ),
        (
            "[[aws.accounts]]\nname = \"p\"\nregions = [\"x\"]\n[[aws.accounts]]\nname = \"p\"\nregions = [\"x\"]\n",
            "aws.accounts[1].name",
            "listed twice",
        ),
        (
            "[[aws.accounts]]\nname = \"p\"\nregions = [\"eu-west-1\", \"eu-west-1\"]\n",
            "aws.accounts[0].regions",
            "eu-west-1 is listed twice",
        ),
        (
            "[[aws.accounts]]\nname = \"p\"\nregions = [\"EU\"]\n",
            "aws.accounts[0].regions",
            "us-east-1",
        ),
        (
            "[[aws.accounts]]\nname = \"p\"\nregions = [\"x\"]\nrole_arn = \"arn:aws:iam::1:role/r\"\n",
            "aws.accounts[0].role_arn",
            "IAM role ARN",
        ),
        (
            "[aws]\nsession_role_arn = \"arn:aws:iam::123456789012:role/s\"\n[[aws.accounts]]\nname = \"p\"\nregions = [\"x\"]\n",
            "aws.session_role_arn",
            "each account's role_arn",
        ),
    ] {
        let d = diag(&format!("{}{text}", minimal()));
        assert_eq!(d.field.as_deref(), Some(field), "{text}");
        assert!(d.message.contains(needle), "{text}: {}", d.message);
    }
}
