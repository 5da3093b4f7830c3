//! One local stack for `ssmgate demo`, `ssmgate bench ssh` and the
//! end-to-end tests' fixture: the SSM simulator in this process with the
//! instances (and faults) asked for, a gateway configured for it (users and
//! their keys, Cedar policies, justification, database, extra TOML), and
//! optionally a real OpenSSH `sshd` as one instance's port 22. Keys, configs
//! and logs are written to a directory the caller owns; [`Stack::stop`]
//! stops what was started.
//!
//! The tests compile this file and its sibling [`openssh`](super::openssh)
//! as modules of their own (`tests/common`): there the simulator is a
//! dev-dependency and the `demo` feature may be off. So both name the
//! library `ssmgate::` (the library calls itself so too) and each other
//! `super::`, and use only what the library and the tests both have.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use ssm_sim::config::SimConfig;
use ssm_sim::server::SimServer;
use ssmgate::config::Config;
use ssmgate::serve::{self, RunningGateway};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::timeout;

pub use super::openssh::{Keygen, Sshd, current_user, find_sshd, ssh_keygen};
use super::openssh::{make_key, start_sshd};

/// Bound on stopping the simulator and sshd.
const LIMIT: Duration = Duration::from_secs(20);

/// A simulated instance.
#[derive(Debug, Clone)]
pub struct Instance {
    id: String,
    name: String,
    computer_name: Option<String>,
    tags: Vec<(String, String)>,
    ports: Vec<(u16, SocketAddr)>,
    online: bool,
}

impl Instance {
    /// An online instance with this id and `Name` tag.
    pub fn new(id: &str, name: &str) -> Self {
        Self {
            id: id.to_owned(),
            name: name.to_owned(),
            computer_name: None,
            tags: Vec::new(),
            ports: Vec::new(),
            online: true,
        }
    }

    /// Its host name.
    pub fn computer_name(mut self, name: &str) -> Self {
        self.computer_name = Some(name.to_owned());
        self
    }

    /// One more tag.
    pub fn tag(mut self, key: &str, value: &str) -> Self {
        self.tags.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Its port `port` reaches `to` (for port sessions and `ssh -J`).
    pub fn port(mut self, port: u16, to: SocketAddr) -> Self {
        self.ports.push((port, to));
        self
    }

    /// Not connected (`ConnectionLost`).
    pub fn offline(mut self) -> Self {
        self.online = false;
        self
    }

    /// Its `[[instances]]` table in the simulator's config.
    fn toml(&self) -> String {
        let mut t = format!(
            "[[instances]]\nid = {}\nname = {}\n",
            quoted(&self.id),
            quoted(&self.name)
        );
        if let Some(c) = &self.computer_name {
            t.push_str(&format!("computer_name = {}\n", quoted(c)));
        }
        let table = |pairs: Vec<(String, String)>| {
            let items: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{} = {}", quoted(k), quoted(v)))
                .collect();
            format!("{{ {} }}", items.join(", "))
        };
        if !self.tags.is_empty() {
            t.push_str(&format!("tags = {}\n", table(self.tags.clone())));
        }
        if !self.ports.is_empty() {
            let ports = self
                .ports
                .iter()
                .map(|(p, a)| (p.to_string(), a.to_string()));
            t.push_str(&format!("ports = {}\n", table(ports.collect())));
        }
        if !self.online {
            t.push_str("ping_status = \"ConnectionLost\"\n");
        }
        t
    }
}

/// A gateway user.
#[derive(Debug, Clone)]
pub struct User {
    name: String,
    groups: Vec<String>,
    key: Option<String>,
    run_as: Option<String>,
}

impl User {
    /// A user in no group, with no key.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            groups: Vec::new(),
            key: None,
            run_as: None,
        }
    }

    /// The OS user their sessions run as.
    pub fn run_as(mut self, os_user: &str) -> Self {
        self.run_as = Some(os_user.to_owned());
        self
    }

    /// One more group.
    pub fn group(mut self, group: &str) -> Self {
        self.groups.push(group.to_owned());
        self
    }

    /// Its authorised key: one of the stack's [`StackBuilder::key`]s.
    pub fn key(mut self, key: &str) -> Self {
        self.key = Some(key.to_owned());
        self
    }
}

/// What to start; see [`Stack::builder`].
#[derive(Debug, Clone)]
pub struct StackBuilder {
    dir: PathBuf,
    keygen: Keygen,
    keys: Vec<String>,
    instances: Vec<Instance>,
    sim_toml: String,
    sshd: Option<(String, String)>,
    sshd_options: String,
    sshd_backend: bool,
    header: String,
    port: u16,
    host_key: String,
    server: String,
    aws: String,
    database: String,
    justification: Option<(String, String)>,
    users: Vec<User>,
    user_cas: Vec<String>,
    policies: Vec<(String, String)>,
    extra: String,
}

/// Everything a [`StackBuilder`] started.
pub struct Stack {
    /// Where its keys, configs and logs are.
    pub dir: PathBuf,
    /// The simulator.
    pub sim: SimServer,
    /// The gateway in front of it.
    pub gateway: RunningGateway,
    /// The sshd behind an instance's port 22, when asked for and installed.
    pub sshd: Option<Sshd>,
}

impl Stack {
    /// A stack that writes into `dir` (which must exist): no instance, no
    /// user, keys by `ssh-keygen`, the gateway on a free port with its host
    /// key in `host_key`, recording to `sqlite://ssmgate.db`, no
    /// justification asked.
    pub fn builder(dir: &Path) -> StackBuilder {
        StackBuilder {
            dir: dir.to_owned(),
            keygen: Keygen::OpenSsh,
            keys: Vec::new(),
            instances: Vec::new(),
            sim_toml: String::new(),
            sshd: None,
            sshd_options: String::new(),
            sshd_backend: false,
            header: String::new(),
            port: 0,
            host_key: "host_key".into(),
            server: String::new(),
            aws: String::new(),
            database: "sqlite://ssmgate.db".into(),
            justification: None,
            users: Vec::new(),
            user_cas: Vec::new(),
            policies: Vec::new(),
            extra: String::new(),
        }
    }

    /// Stops the gateway (recording the sessions' ends), the simulator and
    /// sshd; every wait is bounded.
    pub async fn stop(self) {
        self.gateway.shutdown().await;
        let _ = timeout(LIMIT, self.sim.shutdown()).await;
        if let Some(mut sshd) = self.sshd {
            let _ = sshd.child.start_kill();
            let _ = timeout(LIMIT, sshd.child.wait()).await;
        }
    }
}

impl StackBuilder {
    /// How keys are made (default: `ssh-keygen`).
    pub fn keygen(mut self, keygen: Keygen) -> Self {
        self.keygen = keygen;
        self
    }

    /// A key pair to make: `name` and `name.pub` in the directory (kept
    /// when both exist).
    pub fn key(mut self, name: &str) -> Self {
        self.keys.push(name.to_owned());
        self
    }

    /// One more simulated instance.
    pub fn instance(mut self, instance: Instance) -> Self {
        self.instances.push(instance);
        self
    }

    /// TOML appended to the simulator's config after the instances (e.g.
    /// `[faults]`).
    pub fn sim_toml(mut self, toml: &str) -> Self {
        self.sim_toml = toml.to_owned();
        self
    }

    /// A real sshd as port 22 of `instance`, letting `key` (one of
    /// [`StackBuilder::key`]) in, when OpenSSH's server is installed.
    pub fn sshd(mut self, instance: &str, key: &str) -> Self {
        self.sshd = Some((instance.to_owned(), key.to_owned()));
        self
    }

    /// Carries terminal sessions of the [`StackBuilder::sshd`] instance
    /// through that sshd: the gateway's user CA is made in the directory
    /// and trusted by sshd, the instance is tagged `ssmgate:backend =
    /// sshd`, and sessions log in as whoever runs the stack.
    pub fn sshd_backend(mut self) -> Self {
        self.sshd_backend = true;
        self
    }

    /// Lines added to sshd's config.
    pub fn sshd_options(mut self, lines: &str) -> Self {
        self.sshd_options = lines.to_owned();
        self
    }

    /// Comment lines that open the gateway's config (with their `#`).
    pub fn header(mut self, comment: &str) -> Self {
        self.header = comment.to_owned();
        self
    }

    /// The gateway's port on 127.0.0.1 (default 0: a free one).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// The gateway's host key file, made on first start.
    pub fn host_key(mut self, file: &str) -> Self {
        self.host_key = file.to_owned();
        self
    }

    /// More `[aws]` lines (e.g. `session_role_arn`).
    pub fn aws(mut self, lines: &str) -> Self {
        self.aws = lines.to_owned();
        self
    }

    /// Lines added to the gateway's `[server]` section.
    pub fn server(mut self, lines: &str) -> Self {
        self.server = lines.to_owned();
        self
    }

    /// Where the gateway records (`[database] url`).
    pub fn database(mut self, url: &str) -> Self {
        self.database = url.to_owned();
        self
    }

    /// Every request needs a justification matching `pattern`.
    pub fn justification(mut self, pattern: &str, hint: &str) -> Self {
        self.justification = Some((pattern.to_owned(), hint.to_owned()));
        self
    }

    /// One more gateway user.
    pub fn user(mut self, user: User) -> Self {
        self.users.push(user);
        self
    }

    /// A `[[user_ca]]` whose key is `key` (one of [`StackBuilder::key`]).
    pub fn user_ca(mut self, key: &str) -> Self {
        self.user_cas.push(key.to_owned());
        self
    }

    /// A Cedar policy file, written next to the schema in `policies/`.
    pub fn policy(mut self, file: &str, text: &str) -> Self {
        self.policies.push((file.to_owned(), text.to_owned()));
        self
    }

    /// TOML sections appended to the gateway's config.
    pub fn extra(mut self, toml: &str) -> Self {
        self.extra = toml.to_owned();
        self
    }

    /// Makes the keys, starts sshd (if asked for and installed), the
    /// simulator and the gateway.
    pub async fn start(mut self) -> Result<Stack> {
        let dir = self.dir.clone();
        let mut keys = BTreeMap::new();
        for name in &self.keys {
            keys.insert(name.clone(), make_key(&dir.join(name), self.keygen).await?);
        }
        let public = |name: &str| {
            keys.get(name)
                .cloned()
                .with_context(|| format!("no key {name} in the stack"))
        };
        let sshd = match (&self.sshd, find_sshd()) {
            (Some((instance, key)), Some(binary)) => {
                let mut options = self.sshd_options.clone();
                if self.sshd_backend {
                    let ca_pub = trust_user_ca(&dir)?;
                    options.push_str(&format!("\nTrustedUserCAKeys {}\n", ca_pub.display()));
                }
                let sshd = start_sshd(&binary, &dir, self.keygen, &public(key)?, &options).await?;
                for i in self.instances.iter_mut().filter(|i| &i.id == instance) {
                    i.ports.push((22, sshd.addr));
                    if self.sshd_backend {
                        i.tags.push(("ssmgate:backend".into(), "sshd".into()));
                    }
                }
                Some(sshd)
            }
            _ => None,
        };
        if self.sshd_backend && sshd.is_some() {
            let os_user = current_user().await;
            self.extra.push_str(&format!(
                "\n[sshd_backend]\nenabled = true\ndefault = \"ssm\"        # targets tagged ssmgate:backend = sshd use their sshd\nca_key = {}\nos_user = {}\n",
                quoted(USER_CA),
                quoted(&os_user)
            ));
        }
        let sim = SimServer::start(
            "127.0.0.1:0".parse()?,
            SimConfig::from_toml_str(&self.sim_config())?,
        )
        .await
        .context("starting the SSM simulator")?;
        if !self.policies.is_empty() {
            let policies = dir.join("policies");
            std::fs::create_dir_all(&policies)?;
            std::fs::write(policies.join("schema.cedarschema"), ssmgate::policy::SCHEMA)?;
            for (file, text) in &self.policies {
                std::fs::write(policies.join(file), text)?;
            }
        }
        let path = dir.join("ssmgate.toml");
        std::fs::write(&path, self.gateway_config(&sim.endpoint(), &public)?)?;
        let config = Config::load(&path)?;
        let gateway = serve::start(&config)
            .await
            .context("starting the gateway")?;
        Ok(Stack {
            dir,
            sim,
            gateway,
            sshd,
        })
    }

    fn sim_config(&self) -> String {
        let mut t = "mode = \"fast\"\n".to_owned();
        for i in &self.instances {
            t.push('\n');
            t.push_str(&i.toml());
        }
        t.push_str(&self.sim_toml);
        t
    }

    /// `ssmgate.toml`; `public` gives a key's public half.
    fn gateway_config(
        &self,
        endpoint: &str,
        public: &dyn Fn(&str) -> Result<String>,
    ) -> Result<String> {
        let mut t = self.header.clone();
        t.push_str(&format!(
            "[server]\nlisten = \"127.0.0.1:{}\"\nhost_key = {}\n",
            self.port,
            quoted(&self.host_key)
        ));
        push_lines(&mut t, &self.server);
        t.push_str(&format!(
            "\n[aws]\nregion = \"us-east-1\"\nendpoint = {}\n\
             credentials = \"none\"      # the simulator needs no credentials\n",
            quoted(endpoint)
        ));
        push_lines(&mut t, &self.aws);
        t.push_str(&format!(
            "\n[database]\nurl = {}   # every session and audit event is recorded here\n",
            quoted(&self.database)
        ));
        t.push_str("\n[justification]\n");
        match &self.justification {
            Some((pattern, hint)) => t.push_str(&format!(
                "required = true\npattern = {}\nhint = {}\n",
                literal(pattern),
                quoted(hint)
            )),
            None => t.push_str("required = false\n"),
        }
        for u in &self.users {
            t.push_str(&format!("\n[[users]]\nname = {}\n", quoted(&u.name)));
            if !u.groups.is_empty() {
                let groups: Vec<String> = u.groups.iter().map(|g| quoted(g)).collect();
                t.push_str(&format!("groups = [{}]\n", groups.join(", ")));
            }
            if let Some(key) = &u.key {
                t.push_str(&format!("authorized_keys = [{}]\n", quoted(&public(key)?)));
            }
            if let Some(run_as) = &u.run_as {
                t.push_str(&format!("run_as = {}\n", quoted(run_as)));
            }
        }
        for ca in &self.user_cas {
            t.push_str(&format!(
                "\n[[user_ca]]\npublic_key = {}\n",
                quoted(&public(ca)?)
            ));
        }
        if !self.extra.is_empty() {
            t.push('\n');
            push_lines(&mut t, &self.extra);
        }
        Ok(t)
    }
}

/// The gateway's user CA in a stack's directory.
const USER_CA: &str = "ssmgate_user_ca";

/// Makes the gateway's user CA in `dir` (as the gateway would on its first
/// start) and writes its public line for sshd's `TrustedUserCAKeys`.
fn trust_user_ca(dir: &Path) -> Result<PathBuf> {
    let (ca, _) = ssmgate::sshd::ca::UserCa::load_or_generate(&dir.join(USER_CA))?;
    let path = dir.join("trusted_user_ca_keys");
    std::fs::write(&path, format!("{}\n", ca.public_key_line()))?;
    Ok(path)
}

/// Appends `lines`, ending with a newline.
fn push_lines(t: &mut String, lines: &str) {
    if !lines.is_empty() {
        t.push_str(lines);
        if !lines.ends_with('\n') {
            t.push('\n');
        }
    }
}

/// A TOML basic string.
fn quoted(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            c if c.is_control() => q.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// A TOML literal string (regular expressions read better without
/// escapes), or a basic one when `s` cannot be literal.
fn literal(s: &str) -> String {
    if s.contains('\'') || s.chars().any(char::is_control) {
        quoted(s)
    } else {
        format!("'{s}'")
    }
}

/// A tiny HTTP service answering every request with `body`.
pub async fn http_service(body: &'static str) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") && seen.len() < 65_536 {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(buf.get(..n).unwrap_or_default()),
                    }
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(response.as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    Ok(addr)
}
