//! `ssmgate sessions list|show|replay|export|verify` as an administrator
//! runs them: the real binary against a real SQLite file that the test
//! fills through the recording `Store` API (and tampers with through SQL).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "sessions_cli/fixture.rs"]
mod fixture;

use fixture::{fixture, rows, session, short, text};
use ssmgate::recording::{SessionKind, connect, now};
use uuid::Uuid;

#[test]
fn list_shows_newest_first_and_filters() {
    let f = fixture();
    let all = f.ok(&["list"]);
    let header = all.lines().next().unwrap();
    for col in [
        "ID", "STARTED", "DURATION", "USER", "TARGET", "KIND", "END", "EXIT", "IN", "OUT",
    ] {
        assert!(header.contains(col), "{header}");
    }
    let r = rows(&all);
    assert_eq!(r.len(), 3, "{all}");
    // Newest first: bob (live, 5 min ago), carol (t0+1h), alice (t0).
    assert!(
        r[0].starts_with(&short(&f.live)) && r[0].contains("live"),
        "{all}"
    );
    assert!(
        r[1].starts_with(&short(&f.port)) && r[1].contains("port-1"),
        "{all}"
    );
    assert!(r[2].starts_with(&short(&f.shell)), "{all}");
    let alice = r[2];
    let started = f.shell.started_at.format("%Y-%m-%d %H:%M:%S").to_string();
    for want in [
        &started[..],
        "3m05s",
        "alice",
        "web-1",
        "shell",
        "target_exited",
        " 3 ",
        "1.2 KiB",
        "1.2 MiB",
    ] {
        assert!(alice.contains(want), "{want:?} in {alice}");
    }

    let by_user = f.ok(&["list", "--user", "alice"]);
    assert_eq!(rows(&by_user).len(), 1, "{by_user}");
    assert!(by_user.contains(&short(&f.shell)));
    // Targets match by name or by instance id.
    for target in ["port-1", "i-0port-1"] {
        let by_target = f.ok(&["list", "--target", target]);
        assert_eq!(rows(&by_target).len(), 1, "{by_target}");
        assert!(by_target.contains(&short(&f.port)), "{by_target}");
    }
    let live = f.ok(&["list", "--live"]);
    assert_eq!(rows(&live).len(), 1, "{live}");
    assert!(live.contains(&short(&f.live)), "{live}");
    let recent = f.ok(&["list", "--since", "30m"]);
    assert_eq!(rows(&recent).len(), 1, "{recent}");
    assert!(recent.contains("bob"), "{recent}");
    let limited = f.ok(&["list", "--limit", "2"]);
    assert_eq!(rows(&limited).len(), 2, "{limited}");
    assert_eq!(f.ok(&["list", "--user", "nobody"]), "no sessions match\n");
    let (_, err) = f.fails(&["list", "--since", "yesterday"]);
    assert!(err.contains("--since") && err.contains("RFC 3339"), "{err}");
}

#[test]
fn list_json_has_every_field() {
    let f = fixture();
    let out = f.ok(&["list", "--json"]);
    let objects: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objects.len(), 3, "{out}");
    let alice = objects
        .iter()
        .find(|o| o["user"] == "alice")
        .expect("alice's session");
    assert_eq!(alice["id"], f.shell.id.to_string());
    assert_eq!(
        alice["chain_head"],
        hex::encode(f.shell.chain_head.unwrap())
    );
    assert_eq!(alice["target_name"], "web-1");
    assert_eq!(alice["target_id"], "i-0web-1");
    assert_eq!(alice["exit_status"], 3);
    assert_eq!(alice["bytes_out"], 1_258_291);
    assert_eq!(alice["end_reason"], "target_exited");
    assert_eq!(alice["policy_ids"][1], "prod-needs-ticket");
    assert_eq!(alice["parameters"]["command"][0], "bash -l");
    assert_eq!(alice["aws_reason"], "ssmgate alice: INC-1234: disk full");
    assert_eq!(alice["live"], false);
    let bob = objects.iter().find(|o| o["user"] == "bob").unwrap();
    assert_eq!(bob["live"], true);
    assert!(bob["ended_at"].is_null());
    let live = f.ok(&["list", "--json", "--live"]);
    assert_eq!(live.lines().count(), 1);
}

#[test]
fn show_prints_every_field_and_the_audit_trail() {
    let f = fixture();
    let out = f.ok(&["show", &short(&f.shell)]);
    for want in [
        f.shell.id.to_string().as_str(),
        "alice-0a1b2c3d4e5f67890",
        "certificate",
        "SHA256:Jq3Xb5mW0cY1lG9yEw2uQv7p8Hn4s6Rt0aKzLdVxFcE",
        "alice@corp",
        "4242",
        "10.1.2.3:50022",
        "SSH-2.0-OpenSSH_9.6",
        "SSM-SessionManagerRunShell",
        "INC-1234: disk full",
        "ssmgate alice: INC-1234: disk full",
        "ops-can-shell, prod-needs-ticket",
        "target_exited",
        &hex::encode(f.shell.chain_head.unwrap()),
        "audit trail (4 events)",
        "auth_success",
        "decision_allow",
        "session_start",
        "session_end",
    ] {
        assert!(out.contains(want), "{want:?} missing from\n{out}");
    }
    let line = |label: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{label}:")))
            .unwrap_or_else(|| panic!("no {label} line in\n{out}"))
            .split_once(':')
            .unwrap()
            .1
            .trim()
            .to_owned()
    };
    assert_eq!(line("chunks"), "3");
    assert_eq!(line("events"), "9");
    assert_eq!(line("exit status"), "3");
    assert_eq!(line("aws reason"), "ssmgate alice: INC-1234: disk full");
    // Audit events are in time order.
    let pos = |k: &str| out.find(k).unwrap();
    assert!(
        pos("auth_success") < pos("decision_allow") && pos("session_start") < pos("session_end")
    );
}

#[test]
fn export_asciicast_is_valid_and_keeps_characters_whole() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("alice.cast");
    let out = f.ok(&[
        "export",
        &short(&f.shell),
        "--format",
        "asciicast",
        "--output",
        file.to_str().unwrap(),
    ]);
    assert!(out.contains("alice.cast"), "{out}");
    let cast = std::fs::read_to_string(&file).unwrap();
    // The same to stdout without --output (format defaults to asciicast).
    assert_eq!(f.ok(&["export", &f.shell.id.to_string()]), cast);

    let mut lines = cast.lines();
    let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(header["version"], 2);
    assert_eq!(header["width"], 132);
    assert_eq!(header["height"], 43);
    assert_eq!(header["timestamp"], f.shell.started_at.timestamp());
    assert_eq!(header["title"], "alice@web-1 alice-0a1b2c3d4e5f67890");
    assert_eq!(header["env"]["TERM"], "xterm-256color");

    let events: Vec<(f64, String, String)> = lines
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let times: Vec<f64> = events.iter().map(|e| e.0).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    let stream = |code: &str| -> String {
        events
            .iter()
            .filter(|e| e.1 == code)
            .map(|e| e.2.as_str())
            .collect()
    };
    assert_eq!(
        stream("o"),
        "$ echo café\r\ncafé\r\n$ price: 5€\r\n$ exit\r\n"
    );
    assert!(
        !stream("o").contains('\u{fffd}'),
        "no replacement characters"
    );
    assert_eq!(stream("i"), "echo café\r");
    assert_eq!(stream("r"), "100x30");
    // The event holding the split "é" carries it whole at its second half's time.
    let whole = events
        .iter()
        .find(|e| e.2.starts_with("é\r\n"))
        .expect("é carried over");
    assert_eq!(whole.0, 0.43);
    assert_eq!(events.iter().find(|e| e.1 == "i").unwrap().0, 0.4);
}

#[test]
fn replay_prints_the_output_in_order() {
    let f = fixture();
    let started = std::time::Instant::now();
    let out = f.run(&["replay", &short(&f.shell), "--speed", "100"]);
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(
        out.stdout,
        b"$ echo caf\xc3\xa9\r\ncaf\xc3\xa9\r\n$ price: 5\xe2\x82\xac\r\n$ exit\r\n"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn replay_and_export_refuse_a_port_session() {
    let f = fixture();
    for cmd in ["replay", "export"] {
        let (stdout, err) = f.fails(&[cmd, &short(&f.port)]);
        assert!(stdout.is_empty(), "{stdout}");
        assert!(
            err.contains("has no terminal recording; see `sessions show`") && err.contains("port"),
            "{err}"
        );
    }
}

#[test]
fn verify_finds_tampering_at_the_right_chunk() {
    let f = fixture();
    let id = f.shell.id.to_string();
    let ok = f.ok(&["verify", &id]);
    assert_eq!(ok, format!("OK {id} 3 chunks 9 events\n"));

    // Flip one byte of the typed input in chunk 1's output, same length.
    let original = f.events(f.shell.id, 1);
    let mut edited = original.clone();
    let at = original.windows(4).position(|w| w == b"caf\xc3").unwrap();
    edited[at] = b'C';
    f.set_events(f.shell.id, 1, &edited);
    let (stdout, stderr) = f.fails(&["verify", &short(&f.shell)]);
    assert!(
        stdout.starts_with(&format!("BROKEN {id}: chain broken at chunk 1: ")),
        "{stdout}"
    );
    assert!(stdout.contains("edited"), "{stdout}");
    assert!(stderr.contains("broken"), "{stderr}");
    // Replay still plays it, with a warning.
    let out = f.run(&["replay", &id, "--speed", "1000"]);
    assert!(out.status.success());
    assert!(
        text(&out).1.contains("fails verification"),
        "{}",
        text(&out).1
    );

    // Garbage that does not decode is named too.
    f.set_events(f.shell.id, 1, b"\x01\x09garbage");
    let (stdout, _) = f.fails(&["verify", &id]);
    assert!(
        stdout.contains("chain broken at chunk 1: stored events are unreadable"),
        "{stdout}"
    );

    // --all checks every session and sums up; restored, all pass.
    let (stdout, _) = f.fails(&["verify", "--all"]);
    assert!(stdout.contains("verified 3 sessions: 1 broken"), "{stdout}");
    let session_oks = |out: &str| {
        out.lines()
            .filter(|l| l.starts_with("OK ") && !l.starts_with("OK audit chain"))
            .count()
    };
    assert_eq!(session_oks(&stdout), 2, "{stdout}");
    f.set_events(f.shell.id, 1, &original);
    let all = f.ok(&["verify", "--all"]);
    assert!(all.contains("verified 3 sessions: 0 broken\n"), "{all}");
    assert!(
        all.contains(&format!("OK audit chain {}: 4 events (seq 0–3)", f.chain)),
        "{all}"
    );
    assert!(
        all.contains("verified 1 audit chains (4 events): 0 broken"),
        "{all}"
    );
    assert!(
        all.contains(&format!("OK {} 1 chunks 2 events", f.live.id)),
        "{all}"
    );
}

#[test]
fn ids_resolve_by_unique_prefix() {
    let f = fixture();
    let id = f.port.id.to_string();
    // Full id, short id, 4 digits, upper case: all the same session.
    for arg in [
        id.clone(),
        id[..8].to_owned(),
        id[..13].to_owned(),
        id[..8].to_uppercase(),
    ] {
        let out = f.ok(&["show", &arg]);
        assert!(out.contains(&id), "{arg}: {out}");
    }
    // The shortest prefix (4 digits or more) no other session shares.
    let others: Vec<String> = [&f.shell, &f.live]
        .iter()
        .map(|s| s.id.to_string())
        .collect();
    let n = (4..id.len())
        .find(|&n| others.iter().all(|o| !o.starts_with(&id[..n])))
        .unwrap();
    let out = f.ok(&["verify", &id[..n]]);
    assert!(
        out.starts_with(&format!("OK {id} 1 chunks 2 events")),
        "{out}"
    );

    let unknown = if id.starts_with('0') {
        "ffffffff"
    } else {
        "00000000"
    };
    let (_, err) = f.fails(&["show", unknown]);
    assert!(
        err.contains(&format!("no session matches \"{unknown}\"")),
        "{err}"
    );
    let (_, err) = f.fails(&["show", "abc"]);
    assert!(
        err.contains("not a session id") && err.contains("4 hex digits"),
        "{err}"
    );
    let (_, err) = f.fails(&["show", &Uuid::new_v4().to_string()]);
    assert!(err.contains("no session matches"), "{err}");
}

#[test]
fn an_ambiguous_prefix_lists_the_candidates() {
    let f = fixture();
    // Add sessions until two share their first 4 hex digits.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (prefix, count) = rt.block_on(async {
        let store = connect(&f.url).await.unwrap();
        let fixtures: Vec<String> = [&f.shell, &f.live, &f.port]
            .iter()
            .map(|s| s.id.simple().to_string()[..4].to_owned())
            .collect();
        loop {
            let s = session("dave", "web-2", SessionKind::Exec, now());
            let p = s.id.simple().to_string()[..4].to_owned();
            if fixtures.contains(&p) {
                store.insert_session(&s).await.unwrap();
                let count = 1 + fixtures.iter().filter(|f| **f == p).count();
                return (p, count);
            }
        }
    });
    let (_, err) = f.fails(&["show", &prefix]);
    assert!(
        err.contains(&format!("\"{prefix}\" matches {count} sessions")),
        "{err}"
    );
    assert_eq!(
        err.lines()
            .filter(|l| l.trim_start().starts_with(&prefix))
            .count(),
        count,
        "{err}"
    );
}

#[test]
fn database_comes_from_the_config_or_the_environment() {
    let f = fixture();
    let dir = f.path.parent().unwrap();
    let config = dir.join("ssmgate.toml");
    std::fs::write(
        &config,
        "[database]\nurl = \"sqlite://recordings.db\"\n\n[[users]]\nname = \"alice\"\n",
    )
    .unwrap();
    let run = |cmd: &mut std::process::Command| {
        let out = cmd.output().unwrap();
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stdout}{stderr}");
        stdout
    };
    let bin = || {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_ssmgate"));
        c.env_remove("SSMGATE_DATABASE_URL");
        c
    };
    // --config before or after the subcommand (relative sqlite path is
    // resolved against the config's directory).
    let before = run(bin()
        .args(["sessions", "--config"])
        .arg(&config)
        .args(["list", "--live"]));
    let after = run(bin()
        .args(["sessions", "list", "--live", "-c"])
        .arg(&config));
    assert!(before.contains("bob") && before == after, "{before}");
    let env = run(bin()
        .args([
            "sessions",
            "list",
            "--user",
            "carol",
            "--config",
            "/nonexistent.toml",
        ])
        .env("SSMGATE_DATABASE_URL", &f.url));
    assert!(env.contains("carol"), "{env}");
    // A missing config is named.
    let out = bin()
        .args(["sessions", "list", "--config"])
        .arg(dir.join("missing.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).1.contains("missing.toml"), "{}", text(&out).1);
}
