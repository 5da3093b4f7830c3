//! Scripted access while a reason is required: OpenSSH in BatchMode (no
//! keyboard-interactive), reason grants for forwards, the terminal prompt,
//! ControlMaster, stock paramiko, and the README's recipes (ssh config, CI,
//! Ansible, paramiko, plink) run as written. Every refusal's text is
//! asserted verbatim for its channel kind.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Output, Stdio};

use common::gateway::*;
use common::sha;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// The refusal of a command without a reason (stderr, exit status 255).
const COMMAND_REFUSAL: &str = "ssmgate: access needs a reason (a ticket id like INC-123). To give one, pass it with the command: ssh -o 'SetEnv=SSMGATE_REASON=\"INC-123 why\"' ..., or grant one first: ssh alice@GATEWAY reason 'INC-123 why' --for 1h\r\n";

/// The refusal of a forward without a reason (a channel-open failure).
const FORWARD_REFUSAL: &str = "ssmgate: access needs a reason (a ticket id like INC-123). To give one, grant one first: ssh alice@GATEWAY reason 'INC-123 why' --for 1h (-J, -W, -L and -D carry no SetEnv), or be asked at login: ssh -o PreferredAuthentications=keyboard-interactive,publickey ...";

/// `ssh` as a script runs it: BatchMode, the key only, no askpass.
fn batch(fx: &Fixture, login: &str) -> Command {
    batch_at(fx, login, "ERROR")
}

/// [`batch`] at another log level (OpenSSH shows a forward's refusal at
/// INFO).
fn batch_at(fx: &Fixture, login: &str, level: &str) -> Command {
    let mut cmd = Command::new("ssh");
    cmd.args(["-F", "/dev/null", "-i"])
        .arg(fx.path("alice"))
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            &format!("LogLevel={level}"),
            "-p",
            &fx.gw.addr.port().to_string(),
        ])
        .arg(format!("{login}@127.0.0.1"))
        .env_remove("SSH_ASKPASS")
        .env_remove("DISPLAY")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Runs `cmd` with `input` on stdin.
async fn with_stdin(mut cmd: Command, input: &[u8], secs: u64) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    tokio::spawn(async move {
        let _ = stdin.write_all(&input).await;
        // Keep stdin open a moment: ssh -W closes the channel at EOF.
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    });
    tokio::time::timeout(
        std::time::Duration::from_secs(secs),
        child.wait_with_output(),
    )
    .await
    .expect("finishes in time")
    .expect("runs")
}

/// `ssh -W db-1:80` through the gateway: the HTTP answer, or the refusal.
async fn http_via_w(fx: &Fixture) -> Output {
    let mut cmd = batch_at(fx, "alice", "INFO");
    cmd.args(["-W", "db-1:80"]);
    with_stdin(cmd, b"GET / HTTP/1.0\r\n\r\n", 30).await
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The decisions' (reason, reason_source, grant_id) in the audit, in order.
async fn decisions(fx: &Fixture) -> Vec<(String, String, String)> {
    fx.audit_rows()
        .await
        .into_iter()
        .filter(|(kind, _, _)| kind == "decision_allow")
        .map(|(_, _, detail)| {
            let d: serde_json::Value = serde_json::from_str(&detail).expect("json");
            let s = |k: &str| d[k].as_str().unwrap_or_default().to_owned();
            (s("reason"), s("reason_source"), s("grant_id"))
        })
        .collect()
}

#[tokio::test]
async fn batchmode_commands_need_setenv_and_forwards_need_a_grant() {
    let fx = Fixture::start(false).await;

    // A command with SetEnv: in, without a prompt.
    let mut cmd = batch(&fx, "alice+web-1");
    cmd.args([
        "-o",
        "SetEnv=SSMGATE_REASON=\"INC-1 batch run\"",
        "echo",
        "ok",
    ]);
    let out = output(cmd, 60).await;
    assert_eq!(stdout(&out), "ok\n", "{}", show(&out));
    // Without: refused, and told what works for a command.
    let mut cmd = batch(&fx, "alice+web-1");
    cmd.args(["echo", "ok"]);
    let out = output(cmd, 60).await;
    assert_eq!(out.status.code(), Some(255), "{}", show(&out));
    assert_eq!(stderr(&out), COMMAND_REFUSAL);
    // A shell without a terminal (a script on stdin): the same advice.
    let mut cmd = batch(&fx, "alice+web-1");
    cmd.arg("-T");
    let out = with_stdin(cmd, b"echo hi\n", 60).await;
    assert_eq!(out.status.code(), Some(255), "{}", show(&out));
    assert_eq!(stderr(&out), COMMAND_REFUSAL);
    // A malformed one is refused with the rule.
    let mut cmd = batch(&fx, "alice+web-1");
    cmd.args(["-o", "SetEnv=SSMGATE_REASON=because", "true"]);
    let out = output(cmd, 60).await;
    assert_eq!(
        stderr(&out),
        "ssmgate: SSMGATE_REASON is not accepted: the reason does not match the required format: a ticket id like INC-123\r\n"
    );

    // A forward: refused with the advice that works for forwards.
    let out = http_via_w(&fx).await;
    assert!(!stdout(&out).contains("hello from db-1"), "{}", show(&out));
    assert!(
        stderr(&out).contains(&format!("administratively prohibited: {FORWARD_REFUSAL}")),
        "{}",
        show(&out)
    );

    // A grant for other targets does not cover db-1 …
    let mut cmd = batch(&fx, "alice");
    cmd.args([
        "reason", "INC-2", "web", "work", "--for", "10m", "--target", "web-*",
    ]);
    let out = output(cmd, 30).await;
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        stdout(&out).contains("for targets web-*: \"INC-2 web work\""),
        "{}",
        show(&out)
    );
    let out = http_via_w(&fx).await;
    assert!(stderr(&out).contains(FORWARD_REFUSAL), "{}", show(&out));
    // … one for db-* does, by the name or the instance id.
    let mut cmd = batch(&fx, "alice");
    cmd.args(["reason", "'INC-3 db check'", "--for=15m", "--target=db-*"]);
    let out = output(cmd, 30).await;
    assert!(out.status.success(), "{}", show(&out));
    let out = http_via_w(&fx).await;
    assert!(stdout(&out).contains("hello from db-1"), "{}", show(&out));
    let mut cmd = batch_at(&fx, "alice", "INFO");
    cmd.args(["-W", &format!("{DB_1}:80")]);
    let out = with_stdin(cmd, b"GET / HTTP/1.0\r\n\r\n", 30).await;
    assert!(stdout(&out).contains("hello from db-1"), "{}", show(&out));

    // The list shows both, newest first; the decisions name the grant.
    let mut cmd = batch(&fx, "alice");
    cmd.arg("reason");
    let out = output(cmd, 30).await;
    let list = stdout(&out);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    assert!(
        lines[0].starts_with("ID ") && lines[0].ends_with("REASON"),
        "{list}"
    );
    assert!(
        lines[1].contains(" db-* ") && lines[1].ends_with("INC-3 db check"),
        "{list}"
    );
    assert!(
        lines[2].contains(" web-* ") && lines[2].ends_with("INC-2 web work"),
        "{list}"
    );
    let seen = decisions(&fx).await;
    let by_grant: Vec<_> = seen.iter().filter(|d| d.1 == "grant").collect();
    assert_eq!(by_grant.len(), 2, "{seen:?}");
    assert!(
        by_grant
            .iter()
            .all(|d| d.0 == "INC-3 db check" && d.2.len() == 36)
    );
    assert_eq!(
        seen[0],
        ("INC-1 batch run".into(), "env".into(), String::new())
    );
    let kinds: Vec<String> = fx.audit_rows().await.into_iter().map(|r| r.0).collect();
    assert_eq!(kinds.iter().filter(|k| *k == "reason_granted").count(), 2);

    // A grant the rule refuses, or too long: nothing is granted.
    for (args, says) in [
        (
            vec!["reason", "hello"],
            "does not match the required format",
        ),
        (
            vec!["reason", "INC-4 x", "--for", "9h"],
            "at most 8h; --for 9h is out of range",
        ),
        (vec!["reason", "INC-4 x", "--for", "soon"], "not a duration"),
    ] {
        let mut cmd = batch(&fx, "alice");
        cmd.args(&args);
        let out = output(cmd, 30).await;
        assert!(
            !out.status.success() && stderr(&out).contains(says),
            "{args:?}: {}",
            show(&out)
        );
    }

    // Revoked: refused again.
    let mut cmd = batch(&fx, "alice");
    cmd.args(["reason", "--revoke"]);
    let out = output(cmd, 30).await;
    assert!(
        stdout(&out).starts_with("Revoked 2 reason grants: "),
        "{}",
        show(&out)
    );
    let out = http_via_w(&fx).await;
    assert!(stderr(&out).contains(FORWARD_REFUSAL), "{}", show(&out));
    let kinds: Vec<String> = fx.audit_rows().await.into_iter().map(|r| r.0).collect();
    assert_eq!(kinds.iter().filter(|k| *k == "reason_revoked").count(), 1);

    // Expiry: a grant that ends in two seconds (written straight into the
    // store: the shortest one can ask for is a minute).
    let url = format!("sqlite://{}", fx.path("ssmgate.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("sqlite");
    let now = chrono::Utc::now();
    let t = |d: chrono::TimeDelta| (now + d).to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    sqlx::query(
        "INSERT INTO reason_grants (id, user_name, reason, target_pattern, source_ip, created_at, expires_at) \
         VALUES ($1, 'alice', 'INC-5 short', NULL, '127.0.0.1', $2, $3)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(t(chrono::TimeDelta::zero()))
    .bind(t(chrono::TimeDelta::seconds(3)))
    .execute(&pool)
    .await
    .expect("insert");
    let out = http_via_w(&fx).await;
    assert!(stdout(&out).contains("hello from db-1"), "{}", show(&out));
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let out = http_via_w(&fx).await;
    assert!(stderr(&out).contains(FORWARD_REFUSAL), "{}", show(&out));
}

#[tokio::test]
async fn a_terminal_is_asked_only_when_nothing_else_gave_a_reason() {
    let fx = Fixture::start(false).await;
    // ssh -tt with the answer and the commands typed ahead.
    let mut cmd = batch(&fx, "alice+web-1");
    cmd.arg("-tt");
    let out = with_stdin(cmd, b"INC-9 typed\recho marker-$((6*7))\rexit\r", 60).await;
    let text = stdout(&out);
    assert!(
        text.starts_with(
            "Access needs a reason: a ticket id like INC-123.\r\nReason for access: INC-9 typed\r\n"
        ),
        "{}",
        show(&out)
    );
    assert!(text.contains("marker-42"), "{}", show(&out));
    // With SetEnv: no prompt.
    let mut cmd = batch(&fx, "alice+web-1");
    cmd.args(["-tt", "-o", "SetEnv=SSMGATE_REASON=\"INC-10 env\""]);
    let out = with_stdin(cmd, b"echo marker-$((6*8))\rexit\r", 60).await;
    assert!(stdout(&out).contains("marker-48"), "{}", show(&out));
    assert!(
        !stdout(&out).contains("Reason for access"),
        "{}",
        show(&out)
    );
    // A refused answer is asked again with the rule, three times at most.
    let mut cmd = batch(&fx, "alice+web-1");
    cmd.arg("-tt");
    let out = with_stdin(cmd, b"nope\rstill no\rno\r", 60).await;
    let text = stdout(&out);
    assert_eq!(
        text.matches("That reason is not accepted: the reason does not match the required format: a ticket id like INC-123\r\n").count(),
        3,
        "{}",
        show(&out)
    );
    assert!(
        text.ends_with("ssmgate: no reason given; nothing was opened.\r\n")
            || stderr(&out).contains("no reason given"),
        "{}",
        show(&out)
    );
    let seen = decisions(&fx).await;
    assert_eq!(
        seen.iter()
            .map(|d| (d.0.as_str(), d.1.as_str()))
            .collect::<Vec<_>>(),
        [("INC-9 typed", "prompt"), ("INC-10 env", "env")]
    );
}

#[tokio::test]
async fn sessions_over_a_control_master_carry_the_masters_setenv() {
    let fx = Fixture::start(false).await;
    let control = fx.path("cm-%C");
    // Each call: its own SetEnv (if any) and arguments, over one master.
    let over_master = |args: &[&str]| {
        let mut cmd = batch(&fx, "alice+web-1");
        cmd.args(["-o", "ControlMaster=auto", "-o", "ControlPersist=30"])
            .arg("-o")
            .arg(format!("ControlPath={}", control.display()))
            .args(args);
        output(cmd, 60)
    };
    let out = over_master(&[
        "-o",
        "SetEnv=SSMGATE_REASON=\"INC-11 first\"",
        "echo",
        "one",
    ])
    .await;
    assert_eq!(stdout(&out), "one\n", "{}", show(&out));
    let out = over_master(&[
        "-o",
        "SetEnv=SSMGATE_REASON=\"INC-12 second\"",
        "echo",
        "two",
    ])
    .await;
    assert_eq!(stdout(&out), "two\n", "{}", show(&out));
    let out = over_master(&["-O", "exit"]).await;
    assert!(out.status.success(), "{}", show(&out));
    // As the README says: the second session went with the master's.
    let reasons: Vec<String> = decisions(&fx).await.into_iter().map(|d| d.0).collect();
    assert_eq!(reasons, ["INC-11 first", "INC-11 first"]);
}

/// Runs a python script; `None` (after saying so) without paramiko.
async fn python(fx: &Fixture, name: &str, script: &str) -> Option<Output> {
    let has = std::process::Command::new("python3")
        .args(["-c", "import paramiko"])
        .status()
        .is_ok_and(|s| s.success());
    if !has {
        eprintln!("paramiko is not installed (pip install paramiko): skipping");
        return None;
    }
    let path = fx.path(name);
    std::fs::write(&path, script).expect("script");
    let mut cmd = Command::new("timeout");
    cmd.args(["30", "python3"]).arg(&path).kill_on_drop(true);
    Some(output(cmd, 40).await)
}

#[tokio::test]
async fn stock_paramiko_logs_in_by_key_or_prompt_then_key() {
    let fx = Fixture::start(false).await;
    let script = format!(
        r#"
import paramiko, socket
key = paramiko.Ed25519Key.from_private_key_file({key:?})
def session(interactive):
    t = paramiko.Transport(socket.create_connection(("127.0.0.1", {port})))
    t.start_client(timeout=10)
    if interactive:
        left = t.auth_interactive("alice+web-1", lambda title, instr, prompts: ["INC-20 typed"])
        assert left == ["publickey"], left
    t.auth_publickey("alice+web-1", key)
    c = t.open_session()
    if not interactive:
        c.update_environment({{"SSMGATE_REASON": "INC-21 paramiko env"}})
    c.exec_command("echo via-paramiko")
    out = c.makefile("rb").read().decode()
    print(out.strip(), c.recv_exit_status())
    t.close()
session(True)
session(False)
# A tunnel (what -J/-W do): refused without a reason, open after a grant.
t = paramiko.Transport(socket.create_connection(("127.0.0.1", {port})))
t.start_client(timeout=10)
t.auth_publickey("alice", key)
try:
    t.open_channel("direct-tcpip", ("db-1", 80), ("127.0.0.1", 0))
    print("tunnel opened without a reason")
except paramiko.ChannelException as e:
    print("tunnel refused", e.code)
c = t.open_session()
c.exec_command("reason INC-22 tunnel --for 5m --target db-*")
c.makefile("rb").read()
print("grant", c.recv_exit_status())
tunnel = t.open_channel("direct-tcpip", ("db-1", 80), ("127.0.0.1", 0))
tunnel.sendall(b"GET / HTTP/1.0\r\n\r\n")
body = b""
while True:
    chunk = tunnel.recv(65536)
    if not chunk:
        break
    body += chunk
print("tunnel", b"hello from db-1" in body)
t.close()
"#,
        key = fx.path("alice").display().to_string(),
        port = fx.gw.addr.port()
    );
    let Some(out) = python(&fx, "paramiko_logins.py", &script).await else {
        return;
    };
    assert_eq!(
        stdout(&out),
        "via-paramiko 0\nvia-paramiko 0\ntunnel refused 1\ngrant 0\ntunnel True\n",
        "{}",
        show(&out)
    );
    // paramiko logs the refusal's text: the advice for forwards.
    assert!(stderr(&out).contains(FORWARD_REFUSAL), "{}", show(&out));
    let seen = decisions(&fx).await;
    assert_eq!(
        seen.iter()
            .map(|d| (d.0.as_str(), d.1.as_str()))
            .collect::<Vec<_>>(),
        [
            ("INC-20 typed", "prompt"),
            ("INC-21 paramiko env", "env"),
            ("INC-22 tunnel", "grant")
        ]
    );
}

/// The fenced block after `<!-- recipe:NAME -->` in the README.
fn recipe(name: &str) -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    let marker = format!("<!-- recipe:{name} -->\n");
    let at = readme
        .find(&marker)
        .unwrap_or_else(|| panic!("no recipe {name}"));
    let rest = &readme[at + marker.len()..];
    let body = rest.split_once('\n').expect("fence").1;
    body[..body.find("\n```").expect("closing fence")].to_owned() + "\n"
}

/// A recipe with the test gateway in place of the README's.
fn local(text: &str, fx: &Fixture) -> String {
    let port = fx.gw.addr.port().to_string();
    text.replace("gateway.example.com", "127.0.0.1")
        .replace("2222", &port)
        .replace("~/.ssh/id_ed25519", &fx.path("alice").display().to_string())
}

#[tokio::test]
async fn the_readme_recipes_work_as_written() {
    let Some(fx) = sshd_backend_fixture(false).await else {
        return;
    };
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let hostname = String::from_utf8(run("uname", &["-n"]).stdout).expect("utf-8");
    let hostname = hostname.trim();
    // The team's ssh config, with what a test machine needs after it.
    let config = fx.path("team_ssh_config");
    std::fs::write(
        &config,
        local(&recipe("ssh-config"), &fx).replace("exec ssh -W", &format!("exec ssh -F {} -W", fx.path("team_ssh_config").display()))
            + "\nHost *\n    IdentitiesOnly yes\n    StrictHostKeyChecking no\n    UserKnownHostsFile /dev/null\n    LogLevel INFO\n    BatchMode yes\n",
    )
    .expect("config");
    let cfg = config.display().to_string();

    // CI: SetEnv for a command, a grant for scp through -J, revoked.
    let work = fx.path("ci");
    std::fs::create_dir_all(&work).expect("mkdir");
    let data = common::data(2 << 20, 3);
    std::fs::write(work.join("build.tar.gz"), &data).expect("artifact");
    let _ = std::fs::remove_file("/tmp/build.tar.gz");
    // Without the grant, scp through -J is refused with the forward advice.
    let mut cmd = Command::new("scp");
    cmd.args(["-F", &cfg, "-o", "BatchMode=yes", "build.tar.gz"])
        .arg(format!("{user}@web-1:/tmp/ssmgate-refused.bin"))
        .current_dir(&work)
        .stdin(Stdio::null());
    let out = output(cmd, 60).await;
    assert!(!out.status.success(), "{}", show(&out));
    assert!(
        stderr(&out).contains(&format!("administratively prohibited: {FORWARD_REFUSAL}")),
        "{}",
        show(&out)
    );
    let ci = recipe("ci")
        .replace("ssh -o", &format!("ssh -F {cfg} -o"))
        .replace("scp -o", &format!("scp -F {cfg} -o"))
        .replace("web-1:/tmp", &format!("{user}@web-1:/tmp"));
    let mut cmd = Command::new("sh");
    cmd.args(["-ec", &ci])
        .current_dir(&work)
        .env("TICKET", "INC-77")
        .stdin(Stdio::null());
    let out = output(cmd, 180).await;
    assert!(out.status.success(), "{ci}\n{}", show(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!("{hostname}\nReason granted until ")),
        "{}",
        show(&out)
    );
    assert!(text.contains("Revoked 1 reason grant: "), "{}", show(&out));
    assert_eq!(
        sha(&std::fs::read("/tmp/build.tar.gz").expect("copied")),
        sha(&data)
    );
    let _ = std::fs::remove_file("/tmp/build.tar.gz");

    // The ssh config's other forms, with a grant: by instance id and NAME.ssm.
    let mut cmd = Command::new("ssh");
    cmd.args([
        "-F", &cfg, "gw", "reason", "INC-78", "config", "check", "--for", "5m",
    ]);
    let out = output(cmd, 30).await;
    assert!(out.status.success(), "{}", show(&out));
    for host in [WEB_1.to_owned(), "web-1.ssm".to_owned()] {
        let mut cmd = Command::new("ssh");
        cmd.args(["-F", &cfg, "-l", &user, &host, "uname", "-n"])
            .stdin(Stdio::null());
        let out = output(cmd, 60).await;
        assert_eq!(stdout(&out).trim(), hostname, "{host}: {}", show(&out));
    }

    // Ansible with its default ssh arguments, both styles (the grant above
    // covers ProxyJump style).
    if common::installed("ansible") {
        let inventory = fx.path("inventory.yml");
        std::fs::write(
            &inventory,
            local(&recipe("ansible-inventory"), &fx).replace("ec2-user", &user),
        )
        .expect("inventory");
        for host in ["web-1", "web-1-via-gateway"] {
            let ansible = |module: &str, args: &str| {
                let mut cmd = Command::new("ansible");
                cmd.args([host, "-i"])
                    .arg(&inventory)
                    .args(["-o", "-m", module]);
                if !args.is_empty() {
                    cmd.args(["-a", args]);
                }
                cmd.env("ANSIBLE_LOCAL_TEMP", fx.path("ansible-local"))
                    .env("ANSIBLE_CONTROL_PATH_DIR", fx.path("ansible-cp"))
                    .env("ANSIBLE_NOCOLOR", "1")
                    .env("ANSIBLE_PYTHON_INTERPRETER", "/usr/bin/python3")
                    // Ansible's default ssh arguments, plus the team config.
                    .env(
                        "ANSIBLE_SSH_ARGS",
                        format!("-C -o ControlMaster=auto -o ControlPersist=60s -F {cfg}"),
                    )
                    .stdin(Stdio::null())
                    .kill_on_drop(true);
                cmd
            };
            let out = output(ansible("ping", ""), 180).await;
            assert!(
                out.status.success() && stdout(&out).contains("\"pong\""),
                "{host}: {}",
                show(&out)
            );
            let out = output(ansible("command", "uname -n"), 180).await;
            assert!(
                out.status.success() && stdout(&out).contains(hostname),
                "{host}: {}",
                show(&out)
            );
            let src = fx.path("ansible-src.bin");
            let dest = fx.path(&format!("ansible-dest-{host}.bin"));
            let data = common::data(200 << 10, 4);
            std::fs::write(&src, &data).expect("write");
            let out = output(
                ansible(
                    "copy",
                    &format!("src={} dest={}", src.display(), dest.display()),
                ),
                180,
            )
            .await;
            assert!(out.status.success(), "{host}: {}", show(&out));
            assert_eq!(sha(&std::fs::read(&dest).expect("copied")), sha(&data));
        }
    } else {
        eprintln!("ansible is not installed (pip install ansible-core): skipping its recipe");
    }

    // paramiko.
    let script = local(&recipe("paramiko"), &fx).replace(
        "client.load_system_host_keys()",
        "client.set_missing_host_key_policy(paramiko.AutoAddPolicy())",
    );
    if let Some(out) = python(&fx, "recipe_paramiko.py", &script).await {
        assert_eq!(stdout(&out), format!("{hostname} 0\n"), "{}", show(&out));
    }

    // plink.
    if common::installed("plink") && common::installed("puttygen") {
        let ppk = fx.path("alice.ppk");
        let out = run(
            "puttygen",
            &[
                &fx.path("alice").display().to_string(),
                "-O",
                "private",
                "-o",
                &ppk.display().to_string(),
            ],
        );
        assert!(out.status.success(), "{out:?}");
        let plink = local(&recipe("plink"), &fx)
            .replace(
                "plink -batch",
                &format!("plink -batch -hostkey {}", fx.gw.host_key_fingerprint),
            )
            .replace("alice.ppk", &ppk.display().to_string());
        let mut cmd = Command::new("sh");
        cmd.args(["-ec", &plink]).stdin(Stdio::null());
        let out = output(cmd, 120).await;
        assert!(out.status.success(), "{plink}\n{}", show(&out));
        let text = stdout(&out);
        assert!(
            text.starts_with("Reason granted until ") && text.ends_with(&format!("{hostname}\n")),
            "{}",
            show(&out)
        );
    } else {
        eprintln!("PuTTY's tools are not installed (putty-tools): skipping the plink recipe");
    }
}
