//! Wire shapes seen with a raw HTTP client (unknown operations, malformed
//! JSON, headers, numeric timestamps; STS's XML and its escaping) and
//! config-file error messages.

use std::net::SocketAddr;

use ssm_sim::config::SimConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{WEB, default_sim};

/// One raw AWS JSON 1.1 POST; returns (status, headers lower-cased, body).
pub(super) async fn raw_post(
    addr: SocketAddr,
    target: Option<&str>,
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    raw_request(addr, "application/x-amz-json-1.1", target, body).await
}

/// One raw HTTP/1.1 POST with `content_type`.
async fn raw_request(
    addr: SocketAddr,
    content_type: &str,
    target: Option<&str>,
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let target_header = target
        .map(|t| format!("X-Amz-Target: {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\n{target_header}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
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

#[tokio::test]
async fn sts_wire_shapes() {
    let sim = default_sim().await;
    let form = "application/x-www-form-urlencoded; charset=utf-8";
    let (status, headers, body) = raw_request(
        sim.addr,
        form,
        None,
        "Action=GetCallerIdentity&Version=2011-06-15",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "content-type"), Some("text/xml"));
    assert!(
        body.starts_with(
            "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
        ),
        "{body}"
    );
    for part in [
        "<GetCallerIdentityResult>",
        "<Arn>arn:aws:iam::123456789012:user/sim-user</Arn>",
        "<Account>123456789012</Account>",
        "<ResponseMetadata>",
        "<RequestId>",
    ] {
        assert!(body.contains(part), "{part} in {body}");
    }

    // Errors: ErrorResponse with Type, Code, Message and RequestId; text
    // from the request is escaped.
    let (status, _, body) = raw_request(
        sim.addr,
        form,
        None,
        "Action=Get%3Cx%3E%26%22&Version=2011-06-15",
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body.starts_with("<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"),
        "{body}"
    );
    for part in [
        "<Type>Sender</Type>",
        "<Code>InvalidAction</Code>",
        "<Message>Could not find operation Get&lt;x&gt;&amp;&quot; for version 2011-06-15</Message>",
        "</Error>\n  <RequestId>",
    ] {
        assert!(body.contains(part), "{part} in {body}");
    }
    let (status, _, body) = raw_request(
        sim.addr,
        form,
        None,
        "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A210987654321%3Arole%2Fx&RoleSessionName=s1",
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("<Code>AccessDenied</Code>"), "{body}");
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
        (
            "[[api_faults]]\noperation = \"GetResources\"\ncode = \"Rate exceeded\"\n",
            "sim.toml:3:8: api_faults[0].code: must be a name like GetResources",
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
