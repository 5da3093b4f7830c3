//! `ssmgate policy explain`: a request and its decision written out for a
//! person — who asked, what the target looks like to the policies, the
//! context, the decision, the policies that determined it (with file, line
//! and annotations) and any evaluation errors.

use std::fmt::Write as _;

use cedar_policy::Effect;
use chrono::Timelike;

use super::time::{rfc3339_secs, utc, weekday_name};
use super::{AuthzRequest, Decision, PolicyEngine};
use crate::request::AuthMethod;

/// The request and its decision, as a report.
pub fn render(engine: &PolicyEngine, req: &AuthzRequest<'_>, decision: &Decision) -> String {
    let mut out = String::new();
    let user = req.principal.user;
    let t = req.target;
    let c = &req.context;
    let list = |items: Vec<String>| {
        if items.is_empty() {
            "(none)".to_owned()
        } else {
            items.join(", ")
        }
    };
    let auth = match req.principal.auth {
        AuthMethod::PublicKey { fingerprint } => format!("public key {fingerprint}"),
        AuthMethod::Certificate {
            key_id,
            ca_fingerprint,
            ..
        } => format!("certificate \"{key_id}\" signed by {ca_fingerprint}"),
    };
    let _ = writeln!(out, "Request");
    let _ = writeln!(out, "  user        {} ({auth})", user.name);
    let _ = writeln!(out, "  groups      {}", list(user.groups.clone()));
    let _ = writeln!(
        out,
        "  attributes  {}",
        list(
            user.attributes
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect()
        )
    );
    let _ = writeln!(out, "  action      {}", req.action);
    let _ = writeln!(
        out,
        "  target      {} ({}): {} {} {} ({}), {}, agent {}",
        t.id,
        t.display_name(),
        t.platform_type,
        t.platform_name,
        t.platform_version,
        t.resource_type,
        t.ping_status,
        t.agent_version
    );
    let _ = writeln!(out, "  account     {} (region {})", t.account, t.region);
    let _ = writeln!(
        out,
        "  tags        {}",
        list(t.tags.iter().map(|(k, v)| format!("{k}={v}")).collect())
    );
    let _ = writeln!(out, "  document    {}", c.document);
    let _ = writeln!(
        out,
        "  parameters  {}",
        list(
            c.parameters
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect()
        )
    );
    let _ = writeln!(
        out,
        "  reason      {}",
        c.given_reason()
            .map_or("(none)".to_owned(), |r| format!("\"{r}\""))
    );
    let _ = writeln!(out, "  source ip   {}", c.source_ip);
    let now = utc(c.now);
    let _ = writeln!(
        out,
        "  time        {} ({}, hour {} UTC)",
        rfc3339_secs(&now),
        weekday_name(&now),
        now.hour()
    );
    let _ = writeln!(out, "  recording   {}", c.recording.as_str());
    let _ = writeln!(out);

    let verdict = if decision.allowed { "ALLOW" } else { "DENY" };
    let _ = writeln!(out, "Decision: {verdict}");
    if decision.needs_reason {
        let _ = writeln!(
            out,
            "  Denied only for lack of a reason: with a reason such as \"{}\" it would be allowed.",
            engine.example_reason()
        );
    }
    if !decision.allowed {
        let _ = writeln!(out, "  The user is told: {}", decision.message);
    }
    if decision.allowed {
        let run_as = match (&decision.run_as, &req.principal.user.run_as) {
            (Some(u), _) => Some((u, "@run_as of the permitting policy")),
            (None, Some(u)) => Some((u, "the user's run_as")),
            (None, None) => None,
        };
        if let Some((os_user, from)) = run_as {
            let _ = writeln!(
                out,
                "  Runs as OS user {os_user} ({from}): through the target's sshd, and through SSM documents when sessions have their own AWS identity (session_role_arn or an account's role_arn)"
            );
        }
    }
    if decision.determining_policies.is_empty() {
        let _ = writeln!(
            out,
            "  Determining policies: none — no policy permits this request (deny by default)."
        );
    } else {
        let _ = writeln!(out, "  Determining policies:");
        for id in &decision.determining_policies {
            match engine.policy_info(id) {
                Some(info) => {
                    let effect = match info.effect {
                        Effect::Permit => "permit",
                        Effect::Forbid => "forbid",
                    };
                    let _ = writeln!(
                        out,
                        "    {id}  ({effect}, {}:{})",
                        info.file.display(),
                        info.line
                    );
                    if let Some(d) = &info.description {
                        let _ = writeln!(out, "      {d}");
                    }
                    if let Some(m) = &info.message {
                        let _ = writeln!(out, "      @message: {m}");
                    }
                    if let Some(u) = &info.run_as {
                        let _ = writeln!(out, "      @run_as: {u}");
                    }
                }
                None => {
                    let _ = writeln!(out, "    {id}");
                }
            }
        }
    }
    if decision.errors.is_empty() {
        let _ = writeln!(out, "  Errors: none");
    } else {
        let _ = writeln!(
            out,
            "  Errors (policies that failed to evaluate are skipped):"
        );
        for e in &decision.errors {
            let _ = writeln!(out, "    {e}");
        }
    }
    out
}
