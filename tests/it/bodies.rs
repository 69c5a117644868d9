//! Request bodies on both listeners, over raw connections (a client library would not send what
//! these tests send): a `Content-Length` above the limit is refused before any body is read; a
//! body that trickles in is cut off at `server.request_body_timeout_ms`; a malformed chunked body
//! is 400 `M_NOT_JSON`, not 413.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

use crate::federation::{Fed, Pki};
use crate::server::TestServer;

/// What the server answered on one raw connection, and when.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: Value,
    after: Duration,
}

impl Answer {
    fn errcode(&self) -> &str {
        self.body["errcode"].as_str().unwrap_or("")
    }
}

/// Send `head` (request line and headers, without the blank line), then each chunk after its
/// pause, while reading the response; returns once a whole response has arrived (or 20 s passed).
async fn exchange<S>(stream: S, head: &str, chunks: Vec<(Duration, Vec<u8>)>) -> Answer
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let start = Instant::now();
    let (mut rd, mut wr) = tokio::io::split(stream);
    let head = format!("{head}\r\n\r\n");
    let writer = tokio::spawn(async move {
        wr.write_all(head.as_bytes()).await?;
        for (pause, chunk) in chunks {
            tokio::time::sleep(pause).await;
            wr.write_all(&chunk).await?;
            wr.flush().await?;
        }
        std::io::Result::Ok(wr)
    });
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(done) = complete(&got) {
                return Some(done);
            }
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return complete(&got),
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    let parsed = tokio::time::timeout(Duration::from_secs(20), read).await.ok().flatten();
    let after = start.elapsed();
    writer.abort();
    let (status, body) = parsed.unwrap_or_else(|| panic!("no whole response: {:?}", String::from_utf8_lossy(&got)));
    Answer { status, body, after }
}

/// A whole HTTP/1.1 response with a `Content-Length` body: its status and JSON body.
fn complete(bytes: &[u8]) -> Option<(u16, Value)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let length: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))?
        .parse()
        .ok()?;
    (body.len() >= length).then(|| (status, serde_json::from_str(&body[..length]).unwrap_or(Value::Null)))
}

fn host_of(url: &str) -> String {
    url.split("://").nth(1).unwrap_or(url).trim_end_matches('/').to_owned()
}

async fn plain(s: &TestServer) -> TcpStream {
    TcpStream::connect(host_of(&s.url)).await.unwrap()
}

/// A TLS connection to `fed`'s federation listener, trusting the test CA.
async fn tls(pki: &Pki, fed: &Fed) -> tokio_rustls::client::TlsStream<TcpStream> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(&pki.ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(host_of(fed.url())).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    connector.connect(name, tcp).await.unwrap()
}

/// `count` chunks of a KiB, each after half a second.
fn trickle(count: usize) -> Vec<(Duration, Vec<u8>)> {
    (0..count).map(|_| (Duration::from_millis(500), vec![b' '; 1024])).collect()
}

const LOGIN: &str = "POST /_matrix/client/v3/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json";
const SEND: &str = "PUT /_matrix/federation/v1/send/t1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json";

#[tokio::test]
async fn an_announced_oversized_body_is_refused_before_it_is_sent() {
    let s = TestServer::start_with(&[("TRELLIS_SERVER__MAX_REQUEST_BYTES", "2048")]);
    // Nothing of the body is ever sent: the answer cannot have waited for it.
    let a = exchange(plain(&s).await, &format!("{LOGIN}\r\nContent-Length: 4096"), vec![]).await;
    assert_eq!((a.status, a.errcode()), (413, "M_TOO_LARGE"), "{a:?}");
    assert!(a.after < Duration::from_secs(5), "{a:?}");
    // Within the limit but still absent: the read timeout (default 60 s) is not what answered.
    let a = exchange(plain(&s).await, &format!("{LOGIN}\r\nContent-Length: 100000000000"), vec![]).await;
    assert_eq!((a.status, a.errcode()), (413, "M_TOO_LARGE"), "{a:?}");
    let a = exchange(plain(&s).await, &format!("{LOGIN}\r\nContent-Length: 2"), vec![(Duration::ZERO, b"{}".to_vec())])
        .await;
    assert_eq!(a.status, 400, "a small body is read and parsed as usual: {a:?}");
    assert!(!matches!(a.errcode(), "M_TOO_LARGE" | "M_NOT_JSON"), "{a:?}");
}

#[tokio::test]
async fn a_body_that_trickles_in_is_cut_off() {
    let s = TestServer::start_with(&[("TRELLIS_SERVER__REQUEST_BODY_TIMEOUT_MS", "1500")]);
    // Eight slow clients at once, each announcing 64 KiB and sending 1 KiB every half second
    // (at that pace the body would take 32 s).
    let head = format!("{LOGIN}\r\nContent-Length: 65536");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (stream, head) = (plain(&s).await, head.clone());
        tasks.push(tokio::spawn(async move { exchange(stream, &head, trickle(40)).await }));
    }
    for t in tasks {
        let a = t.await.unwrap();
        assert_eq!(a.status, 408, "{a:?}");
        assert_eq!(a.errcode(), "M_UNKNOWN", "{a:?}");
        assert!(a.after >= Duration::from_millis(1400) && a.after < Duration::from_secs(8), "{a:?}");
    }
    // The server still answers others.
    let r = s.get("/_matrix/client/versions", None).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn a_malformed_chunked_body_is_not_json() {
    let s = TestServer::start_with(&[("TRELLIS_SERVER__MAX_REQUEST_BYTES", "2048")]);
    let head = format!("{LOGIN}\r\nTransfer-Encoding: chunked");
    let a = exchange(plain(&s).await, &head, vec![(Duration::ZERO, b"zz\r\n{}\r\n0\r\n\r\n".to_vec())]).await;
    assert_eq!((a.status, a.errcode()), (400, "M_NOT_JSON"), "{a:?}");
    // A well-formed chunked body past the limit is still too large.
    let big = format!("1000\r\n{}\r\n0\r\n\r\n", " ".repeat(0x1000));
    let a = exchange(plain(&s).await, &head, vec![(Duration::ZERO, big.into_bytes())]).await;
    assert_eq!((a.status, a.errcode()), (413, "M_TOO_LARGE"), "{a:?}");
}

#[tokio::test]
async fn the_federation_listener_reads_bodies_the_same_way() {
    let pki = Pki::new();
    let b = Fed::start_with(
        &pki,
        &[
            ("TRELLIS_FEDERATION__ALLOW_IP_RANGES", r#"["127.0.0.0/8"]"#),
            ("TRELLIS_SERVER__REQUEST_BODY_TIMEOUT_MS", "1500"),
        ],
    );
    let a = exchange(tls(&pki, &b).await, &format!("{SEND}\r\nContent-Length: 8388608"), vec![]).await;
    assert_eq!((a.status, a.errcode()), (413, "M_TOO_LARGE"), "{a:?}");
    assert!(a.after < Duration::from_secs(5), "{a:?}");

    let a = exchange(tls(&pki, &b).await, &format!("{SEND}\r\nContent-Length: 65536"), trickle(40)).await;
    assert_eq!(a.status, 408, "{a:?}");
    assert!(a.after < Duration::from_secs(8), "{a:?}");

    let head = format!("{SEND}\r\nTransfer-Encoding: chunked");
    let a = exchange(tls(&pki, &b).await, &head, vec![(Duration::ZERO, b"zz\r\n{}\r\n0\r\n\r\n".to_vec())]).await;
    assert_eq!((a.status, a.errcode()), (400, "M_NOT_JSON"), "{a:?}");
}
