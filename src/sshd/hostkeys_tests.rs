//! Host-key trust against real keys and certificates (ssh-key's builder)
//! and a real SQLite store for the pins.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use russh::keys::PrivateKey;
use russh::keys::ssh_key::certificate::Builder;
use russh::keys::ssh_key::private::Ed25519Keypair;

use super::*;

fn key(seed: u8) -> PrivateKey {
    PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]))
}

fn target() -> Target {
    Target {
        id: "i-0123456789abcdef0".into(),
        account: "default".into(),
        region: "us-east-1".into(),
        name: Some("web-1".into()),
        computer_name: Some("ip-10-0-0-1.ec2.internal".into()),
        ping_status: "Online".into(),
        platform_type: "Linux".into(),
        platform_name: "Amazon Linux".into(),
        platform_version: "2023".into(),
        resource_type: "EC2Instance".into(),
        agent_version: "3.3".into(),
        ip_address: None,
        last_ping: None,
        tags: BTreeMap::new(),
    }
}

/// A certificate over `host`'s key, signed by `ca`.
fn cert(
    ca: &PrivateKey,
    host: &PrivateKey,
    kind: CertType,
    principals: &[&str],
    valid: bool,
) -> Certificate {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (after, before) = if valid {
        (now - 60, now + 3600)
    } else {
        (now - 7200, now - 3600)
    };
    let mut b = Builder::new(vec![7; 32], host.public_key().clone(), after, before).unwrap();
    b.cert_type(kind).unwrap().key_id("host").unwrap();
    if principals.is_empty() {
        b.all_principals_valid().unwrap();
    }
    for p in principals {
        b.valid_principal(*p).unwrap();
    }
    b.sign(ca).unwrap()
}

async fn store() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("pins.db").display());
    let store = crate::recording::connect(&url).await.unwrap();
    (dir, store)
}

fn offered(c: Certificate) -> Offered {
    Offered::Certificate(Box::new(c))
}

#[tokio::test]
async fn a_host_ca_accepts_only_its_own_valid_host_certificates_for_this_target() {
    let (_dir, store) = store().await;
    let (ca, other_ca, host) = (key(1), key(2), key(3));
    let trust = HostTrust::new(&[ca.public_key().clone()], store);
    let t = target();
    let ok = |r: Result<(), HostKeyError>| r.map_err(|e| e.to_string());

    // Named by instance id, by host name, by Name tag, or valid for all.
    for names in [
        vec!["i-0123456789abcdef0"],
        vec!["IP-10-0-0-1.ec2.internal"],
        vec!["other", "web-1"],
        vec![],
    ] {
        let c = cert(&ca, &host, CertType::Host, &names, true);
        assert_eq!(ok(trust.check(&t, &offered(c)).await), Ok(()), "{names:?}");
    }

    let refused = |r: Result<(), HostKeyError>, want: &str| {
        let e = r.expect_err("refused").to_string();
        assert!(e.contains(want), "{e}");
    };
    // Another CA, a user certificate, an expired one, another host's.
    let c = cert(&other_ca, &host, CertType::Host, &["web-1"], true);
    refused(trust.check(&t, &offered(c)).await, "not acceptable");
    let c = cert(&ca, &host, CertType::User, &["web-1"], true);
    refused(trust.check(&t, &offered(c)).await, "not a host certificate");
    let c = cert(&ca, &host, CertType::Host, &["web-1"], false);
    refused(trust.check(&t, &offered(c)).await, "not acceptable");
    let c = cert(
        &ca,
        &host,
        CertType::Host,
        &["db-1", "i-0ffffffffffffffff"],
        true,
    );
    refused(trust.check(&t, &offered(c)).await, "name neither");
    // A plain key is not enough once host CAs are configured.
    let plain = Offered::Key(host.public_key().clone());
    refused(trust.check(&t, &plain).await, "must be certified");
}

#[tokio::test]
async fn without_a_host_ca_the_first_key_is_pinned_and_a_change_refused() {
    let (_dir, store) = store().await;
    let trust = HostTrust::new(&[], store.clone());
    let t = target();
    let (first, second) = (key(4), key(5));
    let k = |p: &PrivateKey| Offered::Key(p.public_key().clone());
    trust
        .check(&t, &k(&first))
        .await
        .expect("pinned on first use");
    trust.check(&t, &k(&first)).await.expect("same key again");
    let e = trust.check(&t, &k(&second)).await.expect_err("changed");
    assert!(matches!(e, HostKeyError::Mismatch { .. }), "{e}");
    // Pins are per instance: another instance pins its own key; and a
    // second gateway (replica) on the same store sees the first pin.
    let mut other = target();
    other.id = "i-0aaaaaaaaaaaaaaaa".into();
    trust.check(&other, &k(&second)).await.expect("own pin");
    let replica = HostTrust::new(&[], store);
    assert!(replica.check(&t, &k(&second)).await.is_err());
    // A certificate's key counts as its key for pinning.
    let c = cert(&key(9), &first, CertType::Host, &[], true);
    replica
        .check(&t, &offered(c))
        .await
        .expect("same key, certified");
}
