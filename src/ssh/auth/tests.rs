//! Tests for the authentication decisions, with keys and certificates made
//! by the real `ssh-keygen`.

use super::*;
use crate::request::DEFAULT_CERT_EXTENSIONS;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A tempdir of keys made by `ssh-keygen`.
struct Keys {
    dir: tempfile::TempDir,
}

impl Keys {
    /// Makes keys `alice`, `ca` and `names`.
    fn new(names: &[&str]) -> Keys {
        let keys = Keys {
            dir: tempfile::tempdir().unwrap(),
        };
        for name in ["alice", "ca"].iter().chain(names) {
            let status = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C"])
                .arg(format!("{name}@test"))
                .arg("-f")
                .arg(keys.path(name))
                .status()
                .unwrap();
            assert!(status.success(), "ssh-keygen {name}");
        }
        keys
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn pub_line(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(&format!("{name}.pub")))
            .unwrap()
            .trim()
            .to_owned()
    }

    fn public(&self, name: &str) -> PublicKey {
        PublicKey::from_openssh(&self.pub_line(name)).unwrap()
    }

    /// `ssh-keygen -s CA -I ID … USER.pub`, then loads `USER-cert.pub`.
    fn sign(&self, ca: &str, user: &str, args: &[&str]) -> Certificate {
        let out = Command::new("ssh-keygen")
            .arg("-q")
            .arg("-s")
            .arg(self.path(ca))
            .args(args)
            .arg(self.path(&format!("{user}.pub")))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ssh-keygen -s {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(self.path(&format!("{user}-cert.pub"))).unwrap();
        Certificate::from_openssh(text.trim()).unwrap()
    }

    /// What `ssh-keygen -lf` prints as the fingerprint of `file`.
    fn keygen_fingerprint(&self, file: &Path) -> String {
        let out = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(file)
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        text.split_whitespace().nth(1).unwrap().to_owned()
    }

    /// alice (key `alice`, also via certificates) and bob (no keys), CA `ca`.
    fn identities(&self) -> Identities {
        let text = format!(
            "[[users]]\nname = \"alice\"\nauthorized_keys = [\"{}\"]\n\
             [[users]]\nname = \"bob\"\n\
             [[user_ca]]\npublic_key = \"{}\"\n",
            self.pub_line("alice"),
            self.pub_line("ca")
        );
        Identities::from_config(&Config::from_toml_str(&text, self.dir.path()).unwrap())
    }
}

fn v4(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const LOCAL: &str = "127.0.0.1";

#[test]
fn public_keys() {
    let keys = Keys::new(&["other"]);
    let ids = keys.identities();
    assert!(ids.user("alice").is_some());
    assert!(ids.user("carol").is_none());

    let alice = keys.public("alice");
    let method = ids.check_key("alice", &alice).unwrap();
    let expected = keys.keygen_fingerprint(&keys.path("alice.pub"));
    assert_eq!(
        method,
        AuthMethod::PublicKey {
            fingerprint: expected.clone()
        }
    );
    assert_eq!(method.fingerprint(), expected);

    // Comments do not matter, key data does.
    let mut renamed = alice.clone();
    renamed.set_comment("someone else");
    assert!(ids.check_key("alice", &renamed).is_ok());

    assert_eq!(
        ids.check_key("alice", &keys.public("other")),
        Err(Rejection::KeyNotAuthorized)
    );
    assert_eq!(
        ids.check_key("bob", &alice),
        Err(Rejection::KeyNotAuthorized)
    );
    assert_eq!(ids.check_key("carol", &alice), Err(Rejection::UnknownUser));
    // A CA key is not a login key.
    assert_eq!(
        ids.check_key("alice", &keys.public("ca")),
        Err(Rejection::KeyNotAuthorized)
    );
}

#[test]
fn good_certificate() {
    let keys = Keys::new(&["user"]);
    let ids = keys.identities();
    let cert = keys.sign(
        "ca",
        "user",
        &[
            "-I",
            "alice@corp",
            "-n",
            "root,alice",
            "-V",
            "-5m:+1h",
            "-z",
            "42",
        ],
    );
    let method = ids
        .check_certificate("alice", &cert, v4(LOCAL), SystemTime::now())
        .unwrap();
    assert_eq!(
        method,
        AuthMethod::Certificate {
            fingerprint: keys.keygen_fingerprint(&keys.path("user.pub")),
            key_id: "alice@corp".into(),
            serial: 42,
            ca_fingerprint: keys.keygen_fingerprint(&keys.path("ca.pub")),
            extensions: DEFAULT_CERT_EXTENSIONS.map(String::from).to_vec(),
            critical_options: Vec::new(),
        }
    );
    assert!(method.to_string().contains("serial 42"), "{method}");
    // bob is a configured user but not a principal; carol is not a user.
    assert_eq!(
        ids.check_certificate("bob", &cert, v4(LOCAL), SystemTime::now()),
        Err(Rejection::PrincipalMismatch)
    );
    assert_eq!(
        ids.check_certificate("carol", &cert, v4(LOCAL), SystemTime::now()),
        Err(Rejection::UnknownUser)
    );
}

#[test]
fn validity_window() {
    let keys = Keys::new(&["user"]);
    let ids = keys.identities();
    let base = ["-I", "k", "-n", "alice"];
    let check = |extra: &[&str], now: SystemTime| {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let cert = keys.sign("ca", "user", &args);
        ids.check_certificate("alice", &cert, v4(LOCAL), now)
    };
    let now = SystemTime::now();
    assert_eq!(
        check(&["-V", "20200101:20200102"], now),
        Err(Rejection::Expired)
    );
    assert_eq!(check(&["-V", "+1d:+2d"], now), Err(Rejection::NotYetValid));
    assert!(check(&["-V", "always:forever"], now).is_ok());

    // `now` is ours to decide: check the boundaries against the cert itself.
    let cert = keys.sign(
        "ca",
        "user",
        &["-I", "k", "-n", "alice", "-V", "20200101:20200102"],
    );
    let at = |secs: u64| UNIX_EPOCH + Duration::from_secs(secs);
    let check_at = |t| ids.check_certificate("alice", &cert, v4(LOCAL), t);
    assert!(check_at(at(cert.valid_after())).is_ok());
    assert!(check_at(at(cert.valid_before() - 1)).is_ok());
    assert_eq!(
        check_at(at(cert.valid_after() - 1)),
        Err(Rejection::NotYetValid)
    );
    assert_eq!(check_at(at(cert.valid_before())), Err(Rejection::Expired));
}

#[test]
fn principals_type_and_ca() {
    let keys = Keys::new(&["rogue", "user"]);
    let ids = keys.identities();
    let now = SystemTime::now();
    let check = |ca: &str, args: &[&str]| {
        let cert = keys.sign(ca, "user", args);
        ids.check_certificate("alice", &cert, v4(LOCAL), now)
    };
    assert_eq!(
        check("ca", &["-I", "k", "-n", "bob", "-V", "+1h"]),
        Err(Rejection::PrincipalMismatch)
    );
    // No principals means "anyone" to OpenSSH's sshd; we refuse it.
    assert_eq!(
        check("ca", &["-I", "k", "-V", "+1h"]),
        Err(Rejection::PrincipalMismatch)
    );
    assert_eq!(
        check("ca", &["-I", "k", "-n", "alice", "-h", "-V", "+1h"]),
        Err(Rejection::NotAUserCertificate)
    );
    assert_eq!(
        check("rogue", &["-I", "k", "-n", "alice", "-V", "+1h"]),
        Err(Rejection::UntrustedCa)
    );
}

#[test]
fn critical_options() {
    let keys = Keys::new(&["user"]);
    let ids = keys.identities();
    let now = SystemTime::now();
    let cert = keys.sign(
        "ca",
        "user",
        &[
            "-I",
            "k",
            "-n",
            "alice",
            "-V",
            "+1h",
            "-O",
            "source-address=10.0.0.0/8,192.168.1.5,2001:db8::/32",
        ],
    );
    let from = |ip: &str| ids.check_certificate("alice", &cert, ip.parse().unwrap(), now);
    assert!(from("10.1.2.3").is_ok());
    assert!(from("::ffff:10.1.2.3").is_ok());
    assert!(from("192.168.1.5").is_ok());
    assert!(from("2001:db8::7").is_ok());
    assert_eq!(from("11.0.0.1"), Err(Rejection::SourceNotAllowed));
    assert_eq!(from("192.168.1.6"), Err(Rejection::SourceNotAllowed));
    assert_eq!(from("127.0.0.1"), Err(Rejection::SourceNotAllowed));
    assert_eq!(from("2001:db9::1"), Err(Rejection::SourceNotAllowed));

    let cert = keys.sign(
        "ca",
        "user",
        &[
            "-I",
            "k",
            "-n",
            "alice",
            "-V",
            "+1h",
            "-O",
            "force-command=/bin/true",
        ],
    );
    let r = ids.check_certificate("alice", &cert, v4(LOCAL), now);
    assert_eq!(
        r,
        Err(Rejection::UnsupportedCriticalOption("force-command".into()))
    );
    assert_eq!(
        r.unwrap_err().to_string(),
        "unsupported critical option force-command"
    );

    let cert = keys.sign(
        "ca",
        "user",
        &[
            "-I",
            "k",
            "-n",
            "alice",
            "-V",
            "+1h",
            "-O",
            "critical:verify-required",
        ],
    );
    assert_eq!(
        ids.check_certificate("alice", &cert, v4(LOCAL), now),
        Err(Rejection::UnsupportedCriticalOption(
            "verify-required".into()
        ))
    );

    // Extensions (permit-pty, no-port-forwarding, …) are not critical.
    let cert = keys.sign(
        "ca",
        "user",
        &[
            "-I",
            "k",
            "-n",
            "alice",
            "-V",
            "+1h",
            "-O",
            "clear",
            "-O",
            "permit-pty",
        ],
    );
    assert!(
        ids.check_certificate("alice", &cert, v4(LOCAL), now)
            .is_ok()
    );
}

#[test]
fn tampered_certificate_has_a_bad_signature() {
    let keys = Keys::new(&["user"]);
    let ids = keys.identities();
    let cert = keys.sign(
        "ca",
        "user",
        &["-I", "alice-key", "-n", "alice", "-V", "+1h"],
    );
    let mut bytes = cert.to_bytes().unwrap();
    let at = bytes.windows(9).position(|w| w == b"alice-key").unwrap();
    bytes[at] = b'm';
    let forged = Certificate::from_bytes(&bytes).unwrap();
    assert_eq!(forged.key_id(), "mlice-key");
    assert_eq!(
        ids.check_certificate("alice", &forged, v4(LOCAL), SystemTime::now()),
        Err(Rejection::BadSignature)
    );
}

#[test]
fn source_address_lists() {
    let ip = v4("10.0.0.1");
    assert!(source_allowed("10.0.0.1", ip));
    assert!(source_allowed("0.0.0.0/0", ip));
    assert!(source_allowed(" 1.2.3.4 , 10.0.0.0/31", ip));
    assert!(!source_allowed("10.0.0.2/32", ip));
    assert!(source_allowed("::/0", "::1".parse().unwrap()));
    assert!(!source_allowed("::/0", ip));
    // Malformed lists allow nothing, even when another item matches.
    for bad in [
        "",
        "10.0.0.0/33",
        "10.0.0.0/",
        "10.0.0.1,",
        "nope",
        "10.0.0.0/+8",
        "10.0.0.1/8/8",
    ] {
        assert!(!source_allowed(bad, ip), "{bad:?}");
    }
}
