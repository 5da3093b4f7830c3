//! Wire shapes seen with a raw HTTP client (unknown operations, malformed
//! JSON, headers, numeric timestamps) and config-file error messages.

use std::net::SocketAddr;

use ssm_sim::config::SimConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{WEB, default_sim};

/// One raw HTTP/1.1 POST; returns (status, headers lower-cased, body).
async fn raw_post(
    addr: SocketAddr,
    target: Option<&str>,
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let target_header = target
        .map(|t| format!("X-Amz-Target: {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-amz-json-1.1\r\n{target_header}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn wire_shapes() {
    let sim = default_sim().await;

    let (status, headers, body) = raw_post(sim.addr, Some("AmazonSSM.LaunchRockets"), "{}").await;
    assert_eq!(status, 400);
    assert_eq!(
        header(&headers, "x-amzn-errortype"),
        Some("UnknownOperationException")
    );
    assert_eq!(
        header(&headers, "content-type"),
        Some("application/x-amz-json-1.1")
    );
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["__type"], "UnknownOperationException");

    let (status, _, body) = raw_post(sim.addr, None, "{}").await;
    assert_eq!(status, 400);
    assert!(body.contains("UnknownOperationException"));

    let (status, headers, body) =
        raw_post(sim.addr, Some("AmazonSSM.StartSession"), "{\"Target\": ").await;
    assert_eq!(status, 400);
    assert_eq!(
        header(&headers, "x-amzn-errortype"),
        Some("SerializationException")
    );
    assert!(body.contains("SerializationException"));

    let (status, _, body) =
        raw_post(sim.addr, Some("AmazonSSM.StartSession"), "{\"Target\": 5}").await;
    assert_eq!(status, 400);
    assert!(body.contains("SerializationException"), "{body}");

    let (status, _, body) = raw_post(sim.addr, Some("AmazonSSM.StartSession"), "{}").await;
    assert_eq!(status, 400);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["__type"], "ValidationException");
    assert_eq!(
        v["message"],
        "1 validation error detected: Value null at 'target' failed to satisfy constraint: Member must not be null"
    );

    // Timestamps are JSON numbers (epoch seconds); unsigned requests get sim-user.
    let (status, headers, body) = raw_post(
        sim.addr,
        Some("AmazonSSM.StartSession"),
        &format!("{{\"Target\":\"{WEB}\"}}"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(header(&headers, "x-amzn-requestid").is_some());
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["SessionId"].as_str().unwrap().starts_with("sim-user-"));
    let (_, _, body) = raw_post(
        sim.addr,
        Some("AmazonSSM.DescribeSessions"),
        "{\"State\":\"Active\"}",
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["Sessions"][0]["StartDate"].is_f64(), "{body}");
}

#[test]
fn config_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sim.toml");
    let cases = [
        (
            "[[instances]]\nid = \"i-0123456789abcdef0\"\n[[instances]]\nid = \"web-1\"\n",
            "sim.toml:4:6: instances[1].id: must start with i- or mi-",
        ),
        (
            "[[instances]]\nid = \"i-0123456789abcdef0\"\n[[instances]]\nid = \"i-0123456789abcdef0\"\n",
            "sim.toml:4:6: instances[1].id: duplicate instance id",
        ),
        (
            "[[instances]]\nid = \"i-0123456789abcdef0\"\nping_status = \"Asleep\"\n",
            "sim.toml:3:15: instances[0].ping_status: unknown variant `Asleep`",
        ),
        (
            "[[instances]]\nid = \"i-0123456789abcdef0\"\nports = { \"22\" = \"2222\" }\n",
            "sim.toml:3:18: instances[0].ports.\"22\": must be host:port",
        ),
        (
            "[faults]\ndrop_rate = -0.5\n",
            "sim.toml:2:13: faults.drop_rate: must be between 0 and 1",
        ),
        (
            "mode = \"turbo\"\n",
            "sim.toml:1:8: mode: unknown variant `turbo`",
        ),
        (
            "colour = \"blue\"\n",
            "sim.toml:1:1: colour: unknown field `colour`",
        ),
    ];
    for (text, expected) in cases {
        std::fs::write(&path, text).unwrap();
        let err = SimConfig::load(&path).unwrap_err().to_string();
        let shown = err
            .rsplit_once(std::path::MAIN_SEPARATOR)
            .map_or(err.as_str(), |(_, f)| f);
        assert!(shown.starts_with(expected), "{err}\nexpected: {expected}");
    }
}
