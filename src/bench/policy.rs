//! `ssmgate bench policy`: authorisation latency with 1,000 policies and
//! 10,000 targets (generated: 198 teams with five policies each, two
//! break-glass users and the shipped example policies), and the picker's
//! listing time ([`PolicyEngine::permitted`]) for users who see all, some
//! or few of the 10,000 targets. Every decision builds its entities and context, as the
//! gateway does. Target: p99 ≤ 200 µs per decision.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::UserConfig;
use crate::inventory::Target;
use crate::policy::entities::Vocabulary;
use crate::policy::loader::load_sources;
use crate::policy::testfile::default_document;
use crate::policy::{Action, AuthzRequest, ContextInput, PolicyEngine, Principal};
use crate::request::AuthMethod;

/// The shipped schema and example policies.
const SCHEMA: &str = include_str!("../../policies/schema.cedarschema");
const EXAMPLES: [(&str, &str); 7] = [
    (
        "after-hours.cedar",
        include_str!("../../policies/after-hours.cedar"),
    ),
    (
        "data-team.cedar",
        include_str!("../../policies/data-team.cedar"),
    ),
    (
        "developers.cedar",
        include_str!("../../policies/developers.cedar"),
    ),
    (
        "documents.cedar",
        include_str!("../../policies/documents.cedar"),
    ),
    ("prod.cedar", include_str!("../../policies/prod.cedar")),
    (
        "recording.cedar",
        include_str!("../../policies/recording.cedar"),
    ),
    ("sre.cedar", include_str!("../../policies/sre.cedar")),
];
const POLICIES: usize = 1000;
const TARGETS: usize = 10_000;
const DECISIONS: usize = 20_000;

/// Five policies per team: shells and commands on the team's non-prod
/// targets, the team's database port, ProxyJump for its leads, and a
/// forbid on its retired hosts.
fn team_policies(team: usize) -> String {
    format!(
        r#"@id("team{team}-shell")
permit (principal in Group::"team{team}", action == Action::"shell", resource)
when {{ resource.hasTag("team") && resource.getTag("team") == "team{team}" && resource.hasTag("env") && resource.getTag("env") != "prod" }};
@id("team{team}-exec")
permit (principal in Group::"team{team}", action == Action::"exec", resource)
when {{ resource.hasTag("team") && resource.getTag("team") == "team{team}" && context.parameters has command }};
@id("team{team}-db")
permit (principal in Group::"team{team}", action == Action::"port_forward", resource)
when {{ resource.hasTag("team") && resource.getTag("team") == "team{team}" && context.parameters has portNumber && context.parameters.portNumber == {port} }};
@id("team{team}-leads-ssh")
permit (principal in Group::"team{team}-leads", action == Action::"ssh", resource)
when {{ resource.hasTag("team") && resource.getTag("team") == "team{team}" }};
@id("team{team}-retired")
@message("team{team}'s retired hosts are closed")
forbid (principal in Group::"team{team}", action, resource)
when {{ resource.hasTag("lifecycle") && resource.getTag("lifecycle") == "retired" && context.source_ip.isInRange(ip("10.{team8}.0.0/16")) }};
"#,
        port = 5000 + team,
        team8 = team % 250,
    )
}

fn targets(teams: usize) -> Vec<Target> {
    (0..TARGETS)
        .map(|i| {
            let env = ["dev", "staging", "prod"][i % 3];
            let role = ["web", "db", "cache", "worker"][i % 4];
            let mut tags = BTreeMap::from([
                ("team".to_owned(), format!("team{}", i % teams)),
                ("env".to_owned(), env.to_owned()),
                ("role".to_owned(), role.to_owned()),
                ("Name".to_owned(), format!("{role}-{env}-{i}")),
                ("cost-center".to_owned(), format!("cc-{}", i % 37)),
            ]);
            if i % 10 == 0 {
                tags.insert("recording".to_owned(), "required".to_owned());
            }
            if i % 50 == 0 {
                tags.insert("lifecycle".to_owned(), "retired".to_owned());
            }
            Target {
                id: format!("i-{i:017x}"),
                account: "default".into(),
                region: "us-east-1".into(),
                name: Some(format!("{role}-{env}-{i}")),
                computer_name: Some(format!("ip-10-0-{}-{}.internal", i / 256, i % 256)),
                ping_status: "Online".into(),
                platform_type: "Linux".into(),
                platform_name: "Amazon Linux".into(),
                platform_version: "2023".into(),
                resource_type: "EC2Instance".into(),
                agent_version: "3.3.987.0".into(),
                ip_address: None,
                last_ping: None,
                tags,
            }
        })
        .collect()
}

fn user(name: &str, groups: &[&str]) -> UserConfig {
    UserConfig {
        name: name.into(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        attributes: BTreeMap::from([("team".to_owned(), "bench".to_owned())]),
        authorized_keys: Vec::new(),
        authorized_keys_file: None,
        run_as: None,
    }
}

fn context(
    action: Action,
    port: Option<u16>,
    reason: Option<&str>,
    now: SystemTime,
) -> ContextInput {
    let mut parameters = BTreeMap::new();
    match action {
        Action::Ssh => {
            parameters.insert("portNumber".into(), "22".into());
        }
        Action::PortForward => {
            parameters.insert("portNumber".into(), port.unwrap_or(5432).to_string());
        }
        Action::Exec => {
            parameters.insert("command".into(), "uptime".into());
        }
        Action::Shell => {}
    }
    ContextInput {
        document: default_document(action).into(),
        parameters,
        reason: reason.map(str::to_owned),
        source_ip: IpAddr::from([10, 17, 3, 4]),
        now,
        recording: action.recording(),
        backend: "ssm",
        os_user: None,
        reason_source: if reason.is_some() { "env" } else { "none" },
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// Builds the engine over the examples plus generated team policies.
fn engine() -> anyhow::Result<(PolicyEngine, usize, Duration)> {
    let dir = PathBuf::from("bench-policies");
    let mut files: Vec<(PathBuf, String)> = EXAMPLES
        .iter()
        .map(|(name, text)| (dir.join(name), (*text).to_owned()))
        .collect();
    let examples = files
        .iter()
        .map(|(_, t)| t.matches("@id(").count())
        .sum::<usize>();
    let teams = (POLICIES - examples) / 5;
    let mut generated = String::new();
    for team in 0..teams {
        generated.push_str(&team_policies(team));
    }
    let extra = POLICIES - examples - teams * 5;
    for n in 0..extra {
        generated.push_str(&format!(
            "@id(\"break-glass-{n}\")\npermit (principal == User::\"breakglass{n}\", action, resource);\n"
        ));
    }
    files.push((dir.join("teams.cedar"), generated));
    let vocab = Vocabulary::new().map_err(anyhow::Error::msg)?;
    let started = Instant::now();
    let snapshot = load_sources(
        &dir,
        (Path::new("bench-policies/schema.cedarschema"), SCHEMA),
        &files,
        &vocab,
    )?;
    let load_time = started.elapsed();
    Ok((
        PolicyEngine::from_snapshot(vocab, snapshot, crate::policy::DEFAULT_EXAMPLE_REASON),
        teams,
        load_time,
    ))
}

/// Runs the benchmark and prints its table.
pub fn run() -> anyhow::Result<()> {
    let (engine, teams, load_time) = engine()?;
    let policies = engine.snapshot().policies.len();
    let targets = targets(teams);
    let now =
        crate::policy::time::parse_rfc3339("2026-11-03T10:00:00Z").map_err(anyhow::Error::msg)?;
    let key = AuthMethod::PublicKey {
        fingerprint: "SHA256:bench".into(),
    };
    let sre = user("sam", &["sre", "oncall"]);
    let dev = user("dana", &["developers", "team17", "team17-leads", "data"]);
    let member = user("max", &["team42"]);
    let users = [&sre, &dev, &member];

    let mut rng = StdRng::seed_from_u64(7);
    let mut latencies = Vec::with_capacity(DECISIONS);
    let mut allowed = 0usize;
    let mut needs_reason = 0usize;
    // Warm-up.
    for target in targets.iter().take(200) {
        let req = AuthzRequest {
            principal: Principal {
                user: &sre,
                auth: &key,
            },
            action: Action::Shell,
            target,
            context: context(Action::Shell, None, None, now),
        };
        let _ = engine.decide(&req);
    }
    for _ in 0..DECISIONS {
        let user = users[rng.random_range(0..users.len())];
        let action = Action::ALL[rng.random_range(0..4)];
        let target = &targets[rng.random_range(0..targets.len())];
        let reason = rng.random_bool(0.5).then_some("INC-1234 bench");
        let port = Some(if rng.random_bool(0.5) { 5017 } else { 5432 });
        let req = AuthzRequest {
            principal: Principal { user, auth: &key },
            action,
            target,
            context: context(action, port, reason, now),
        };
        let started = Instant::now();
        let d = engine.decide(&req);
        latencies.push(started.elapsed());
        allowed += usize::from(d.allowed);
        needs_reason += usize::from(d.needs_reason);
    }
    latencies.sort();
    let mean = latencies.iter().sum::<Duration>() / latencies.len().max(1) as u32;

    let mut rows: Vec<(String, String)> = Vec::new();
    rows.push((
        format!("load + validate {policies} policies"),
        ms(load_time),
    ));
    rows.push((
        format!("decision p50 ({DECISIONS} mixed requests)"),
        us(percentile(&latencies, 0.50)),
    ));
    rows.push(("decision p90".into(), us(percentile(&latencies, 0.90))));
    rows.push(("decision p99".into(), us(percentile(&latencies, 0.99))));
    rows.push(("decision max".into(), us(percentile(&latencies, 1.0))));
    rows.push(("decision mean".into(), us(mean)));
    rows.push((
        "  of which allowed / denied for lack of a reason".into(),
        format!("{allowed} / {needs_reason}"),
    ));
    for (label, user, action) in [
        ("SRE, shell", &sre, Action::Shell),
        ("developer + team17, shell", &dev, Action::Shell),
        ("team42 member, shell", &member, Action::Shell),
    ] {
        let principal = Principal { user, auth: &key };
        let ctx = context(action, None, None, now);
        let mut times = Vec::new();
        let mut listed = 0;
        for _ in 0..5 {
            let started = Instant::now();
            listed = engine.permitted(&principal, action, &targets, &ctx).len();
            times.push(started.elapsed());
        }
        times.sort();
        rows.push((
            format!("picker listing: {label} ({TARGETS} targets → {listed} listed), median of 5"),
            ms(times[times.len() / 2]),
        ));
    }
    let width = rows
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(10);
    println!(
        "ssmgate bench policy: {policies} policies ({teams} generated teams + examples), {TARGETS} targets"
    );
    for (label, value) in rows {
        println!("  {label:<width$}  {value:>12}");
    }
    let p99 = percentile(&latencies, 0.99);
    println!(
        "  target p99 ≤ 200 µs per decision: {}",
        if p99 <= Duration::from_micros(200) {
            "met"
        } else {
            "NOT met"
        }
    );
    Ok(())
}
