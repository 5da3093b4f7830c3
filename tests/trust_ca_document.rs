//! The SSM Command document `deploy/ssm-documents/ssmgate-trust-ca.json`,
//! run for real: its script (parameters checked against the document's
//! own `allowedPattern`s and substituted as SSM does) edits a real
//! sshd's config, `sshd -t` accepts it, sshd reloads (SIGHUP), and then a
//! certificate from the gateway's user CA logs in as an allowed user while
//! one naming any other user is refused. Run twice, it changes nothing
//! more; beside another trusted CA, that CA keeps working.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::openssh::{Keygen, current_user, find_sshd, ssh_keygen, start_sshd};
use russh::keys::ssh_key::LineEnding;
use ssmgate::sshd::ca::{CertRequest, UserCa};
use tokio::process::Command;

/// The document's script with `params` substituted, after checking each
/// against its `allowedPattern` as SSM does.
fn script(params: &[(&str, &str)]) -> String {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/ssm-documents/ssmgate-trust-ca.json"),
    )
    .expect("document");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(doc["schemaVersion"], "2.2");
    let mut script = doc["mainSteps"][0]["inputs"]["runCommand"]
        .as_array()
        .expect("runCommand")
        .iter()
        .map(|l| l.as_str().expect("line"))
        .collect::<Vec<_>>()
        .join("\n");
    for (name, value) in params {
        let pattern = doc["parameters"][name]["allowedPattern"]
            .as_str()
            .expect("pattern");
        assert!(
            regex::Regex::new(pattern).expect("regex").is_match(value),
            "{name}={value:?} fails {pattern}"
        );
        script = script.replace(&format!("{{{{ {name} }}}}"), value);
    }
    assert!(!script.contains("{{"), "every parameter substituted");
    script
}

/// Runs the script against `config`, reloading sshd by `reload`.
async fn run_script(script: &str, config: &Path, reload: &str) -> std::process::Output {
    let out = Command::new("sh")
        .args(["-c", script])
        .env("SSMGATE_SSHD_CONFIG", config)
        .env("SSMGATE_SSHD_RELOAD", reload)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("sh");
    assert!(
        out.status.success(),
        "the document's script failed: {out:?}"
    );
    out
}

/// Writes a session key and certificate for `user` into `dir`; the key's
/// path.
fn issue(ca: &UserCa, dir: &Path, user: &str) -> std::path::PathBuf {
    let issued = ca
        .issue(&CertRequest {
            os_user: user,
            key_id: format!("ssmgate:test:{user}"),
            validity: Duration::from_secs(600),
            pty: false,
        })
        .expect("issue");
    let key = dir.join(format!("session-{user}"));
    issued
        .key
        .write_openssh_file(&key, LineEnding::LF)
        .expect("key");
    std::fs::write(
        dir.join(format!("session-{user}-cert.pub")),
        issued.cert.to_openssh().expect("cert"),
    )
    .expect("cert");
    key
}

/// `ssh` into the test sshd with `key` (and its `-cert.pub`) as `user`.
async fn login(addr: std::net::SocketAddr, key: &Path, user: &str) -> std::process::Output {
    Command::new("ssh")
        .args(["-F", "/dev/null", "-i"])
        .arg(key)
        .args([
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-p",
            &addr.port().to_string(),
            &format!("{user}@127.0.0.1"),
            "echo logged-in-as-$(id -un)",
        ])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("ssh")
}

/// `sshd -T` of `config`, as `key value` lines.
async fn effective(config: &Path) -> String {
    let out = Command::new(find_sshd().expect("sshd"))
        .arg("-T")
        .arg("-f")
        .arg(config)
        .output()
        .await
        .expect("sshd -T");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn the_trust_ca_document_lets_the_gateway_in_as_allowed_users_only() {
    let Some(sshd_bin) = find_sshd() else {
        eprintln!("sshd is not installed (openssh-server): skipping");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let me = current_user().await;
    // A running sshd that trusts nothing but an authorized_keys file.
    let sshd = start_sshd(&sshd_bin, dir.path(), Keygen::Builtin, "", "")
        .await
        .expect("sshd");
    let config = dir.path().join("sshd_config");
    let reload = format!("kill -HUP {}", sshd.child.id().expect("pid"));
    let (ca, _) = UserCa::load_or_generate(&dir.path().join("ca")).expect("CA");
    let allowed = format!("{me},ec2-user");
    let script = script(&[
        ("CaPublicKey", &ca.public_key_line()),
        ("AllowedUsers", &allowed),
    ]);

    run_script(&script, &config, &reload).await;
    let conf = effective(&config).await;
    let ca_file = dir.path().join("ssmgate_user_ca.pub");
    assert!(
        conf.contains(&format!("trustedusercakeys {}", ca_file.display())),
        "{conf}"
    );
    assert!(
        conf.contains(&format!(
            "authorizedprincipalsfile {}/ssmgate_principals/%u",
            dir.path().display()
        )),
        "{conf}"
    );
    // Idempotent: a second run (State Manager re-applies it) keeps one CA
    // line and one header.
    run_script(&script, &config, &reload).await;
    let ca_lines = std::fs::read_to_string(&ca_file).expect("CA file");
    assert_eq!(ca_lines.lines().count(), 1, "{ca_lines}");
    let text = std::fs::read_to_string(&config).expect("config");
    assert_eq!(text.matches("TrustedUserCAKeys").count(), 1, "{text}");

    // After the reload, the gateway's certificate logs in as an allowed
    // user; one naming another user is refused.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let key = issue(&ca, dir.path(), &me);
    let mut out = login(sshd.addr, &key, &me).await;
    for _ in 0..20 {
        if out.status.success() {
            break;
        }
        // sshd re-executes itself on SIGHUP; give it a moment.
        tokio::time::sleep(Duration::from_millis(250)).await;
        out = login(sshd.addr, &key, &me).await;
    }
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("logged-in-as-{me}")
    );
    if me != "nobody" {
        let other = issue(&ca, dir.path(), "nobody");
        let out = login(sshd.addr, &other, "nobody").await;
        assert!(!out.status.success(), "a user not allowed: {out:?}");
        // Refused at authentication, not merely by nobody's shell.
        let log = std::fs::read_to_string(dir.path().join("sshd.log")).expect("log");
        assert!(
            log.contains(&format!("Accepted publickey for {me}")),
            "{log}"
        );
        assert!(!log.contains("Accepted publickey for nobody"), "{log}");
    }
}

#[tokio::test]
async fn another_trusted_ca_keeps_working_and_gets_no_principals_file() {
    let Some(sshd_bin) = find_sshd() else {
        eprintln!("sshd is not installed (openssh-server): skipping");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let me = current_user().await;
    // The site's own CA, already trusted.
    let site_ca = dir.path().join("site_ca");
    assert!(ssh_keygen(&site_ca).status().expect("ssh-keygen").success());
    let site_file = dir.path().join("site_cas.pub");
    std::fs::copy(dir.path().join("site_ca.pub"), &site_file).expect("copy");
    let options = format!("TrustedUserCAKeys {}\n", site_file.display());
    let sshd = start_sshd(&sshd_bin, dir.path(), Keygen::Builtin, "", &options)
        .await
        .expect("sshd");
    let config = dir.path().join("sshd_config");
    let reload = format!("kill -HUP {}", sshd.child.id().expect("pid"));
    let (ca, _) = UserCa::load_or_generate(&dir.path().join("ca")).expect("CA");
    let script = script(&[
        ("CaPublicKey", &ca.public_key_line()),
        ("AllowedUsers", &me),
    ]);
    let out = run_script(&script, &config, &reload).await;
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("other user CAs"),
        "{out:?}"
    );
    // Both CAs in the file sshd already used; no principals file added.
    let cas = std::fs::read_to_string(&site_file).expect("CA file");
    assert_eq!(cas.lines().count(), 2, "{cas}");
    assert!(cas.contains("ssmgate-user-ca"), "{cas}");
    let conf = effective(&config).await;
    assert!(conf.contains("authorizedprincipalsfile none"), "{conf}");

    // A certificate from the site's CA still logs in.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let user_key = dir.path().join("user");
    assert!(
        ssh_keygen(&user_key)
            .status()
            .expect("ssh-keygen")
            .success()
    );
    assert!(
        std::process::Command::new("ssh-keygen")
            .args(["-q", "-s"])
            .arg(&site_ca)
            .args(["-I", "site", "-n", &me, "-V", "-5m:+10m"])
            .arg(dir.path().join("user.pub"))
            .status()
            .expect("sign")
            .success()
    );
    let mut out = login(sshd.addr, &user_key, &me).await;
    for _ in 0..20 {
        if out.status.success() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        out = login(sshd.addr, &user_key, &me).await;
    }
    assert!(out.status.success(), "{out:?}");
    // And so does the gateway's.
    let key = issue(&ca, dir.path(), &me);
    let out = login(sshd.addr, &key, &me).await;
    assert!(out.status.success(), "{out:?}");
}
