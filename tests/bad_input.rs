//! Hostile and odd input, over real loopback HTTP and straight into the parsers: the committed
//! corpus in tests/corpus/ (plus multi-megabyte bodies generated here) never gets a 5xx or a
//! dropped connection, every refusal is a 4xx with a JSON `message`, nothing refused is half
//! stored, and the daemon stays ready. Property tests then throw arbitrary bytes, JSON values,
//! config texts and templates at the intake, the body parser, the config loader and the field
//! templates.

mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use common::Harness;
use proptest::{prelude::*, test_runner::TestRunner};
use serde::Deserialize;
use serde_json::{Value, json};
use tandem::{config::Config, mapping::FieldTemplates, store::Store};

/// The daemon's default `daemon.limits.max_body_bytes` (the harness config does not change it).
const LIMIT: usize = 1_048_576;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    case: Vec<Case>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    file: String,
    content_type: Option<String>,
    expect: String,
    error: Option<String>,
    email: Option<String>,
    #[allow(dead_code)]
    note: Option<String>,
}

fn manifest() -> Manifest {
    let text = std::fs::read_to_string(corpus_dir().join("MANIFEST.toml")).expect("manifest");
    toml::from_str(&text).unwrap_or_else(|e| panic!("tests/corpus/MANIFEST.toml: {e}"))
}

fn corpus_request(c: &Case) -> Request {
    Request {
        name: c.file.clone(),
        content_type: c.content_type.clone(),
        body: std::fs::read(corpus_dir().join(&c.file)).unwrap(),
        expect: c.expect.clone(),
        error: c.error.clone(),
        email: c.email.clone(),
    }
}

/// One request of the replay: what is sent and what must come back.
struct Request {
    name: String,
    content_type: Option<String>,
    body: Vec<u8>,
    expect: String,
    error: Option<String>,
    email: Option<String>,
}

impl Request {
    fn generated(name: &str, ct: &str, body: Vec<u8>, expect: &str, error: Option<&str>) -> Self {
        Request {
            name: name.into(),
            content_type: Some(ct.into()),
            body,
            expect: expect.into(),
            error: error.map(str::to_owned),
            email: None,
        }
    }
}

/// A JSON lead `{"email": …, field: <n bytes of x>}` padded to exactly `total` bytes.
fn json_padded_to(email: &str, field: &str, total: usize) -> Vec<u8> {
    let head = format!(r#"{{"email":"{email}","{field}":""#);
    let tail = "\"}";
    let pad = total - head.len() - tail.len();
    let mut v = Vec::with_capacity(total);
    v.extend_from_slice(head.as_bytes());
    v.resize(head.len() + pad, b'x');
    v.extend_from_slice(tail.as_bytes());
    assert_eq!(v.len(), total);
    v
}

/// The inputs too big to commit.
fn generated_requests() -> Vec<Request> {
    let j = "application/json";
    let f = "application/x-www-form-urlencoded";
    let long_email = format!("{}@example.com", "a".repeat(10_000 - 12));
    assert_eq!(long_email.len(), 10_000);
    let mb = "y".repeat(1_000_000);
    vec![
        Request::generated(
            "generated: email of 10,000 chars",
            j,
            json!({ "email": long_email }).to_string().into_bytes(),
            "400",
            Some("invalid_field"),
        ),
        Request::generated(
            "generated: 1 MB first_name",
            j,
            json!({"email": "mbname@example.com", "first_name": mb})
                .to_string()
                .into_bytes(),
            "400",
            Some("invalid_field"),
        ),
        Request::generated(
            "generated: 1 MB form first_name",
            f,
            format!("email=mbform%40example.com&first_name={mb}").into_bytes(),
            "400",
            Some("invalid_field"),
        ),
        Request {
            email: Some("mbcustom@example.com".into()),
            ..Request::generated(
                "generated: 1 MB custom field (under the body limit)",
                j,
                json!({"email": "mbcustom@example.com", "notes": mb})
                    .to_string()
                    .into_bytes(),
                "202",
                None,
            )
        },
        Request {
            email: Some("at-limit@example.com".into()),
            ..Request::generated(
                "generated: body of exactly max_body_bytes",
                j,
                json_padded_to("at-limit@example.com", "pad", LIMIT),
                "202",
                None,
            )
        },
        Request::generated(
            "generated: body one byte over max_body_bytes",
            j,
            json_padded_to("over-limit@example.com", "pad", LIMIT + 1),
            "413",
            Some("too_large"),
        ),
    ]
}

/// What one answer looked like.
struct Answer {
    status: u16,
    body: Value,
}

async fn send(h: &Harness, r: &Request) -> Answer {
    let mut req = h.http.post(h.url("/hooks/website")).body(r.body.clone());
    if let Some(ct) = &r.content_type {
        req = req.header("content-type", ct);
    }
    let resp = req.send().await.unwrap_or_else(|e| {
        panic!(
            "{}: the connection failed instead of an answer: {e}",
            r.name
        )
    });
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    Answer {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

/// Checks one answer against the request's expectation; returns the lead id of a 202.
fn check(r: &Request, a: &Answer) -> Option<String> {
    let what = format!(
        "{} ({:?}) answered {} {}",
        r.name, r.content_type, a.status, a.body
    );
    assert!(a.status < 500, "5xx: {what}");
    let ok = match r.expect.as_str() {
        "4xx" => (400..500).contains(&a.status),
        "any" => a.status == 202 || (400..500).contains(&a.status),
        exact => exact.parse::<u16>().expect("expect is a status") == a.status,
    };
    assert!(ok, "expected {}: {what}", r.expect);
    if a.status == 202 {
        assert_eq!(a.body["duplicate"], json!(false), "{what}");
        return Some(
            a.body["lead_id"]
                .as_str()
                .unwrap_or_else(|| panic!("202 without a lead_id: {what}"))
                .to_owned(),
        );
    }
    assert!(
        a.body["message"]
            .as_str()
            .is_some_and(|m| !m.trim().is_empty()),
        "a refusal must be JSON with a message: {what}"
    );
    if let Some(code) = &r.error {
        assert_eq!(a.body["error"], json!(code), "{what}");
    }
    None
}

/// Sends `head` then `body` over one connection while reading the answer at the same time (a
/// server that answers 413 early must still be heard), and returns what the server said.
/// `half_close`: shut the write side once everything is sent, as `nc -N` and some clients do.
async fn raw_exchange(addr: SocketAddr, head: String, body: Vec<u8>, half_close: bool) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        // The server may stop reading (and close) once it has refused: write errors are expected.
        if wr.write_all(head.as_bytes()).await.is_ok() {
            for chunk in body.chunks(64 * 1024) {
                if wr.write_all(chunk).await.is_err() {
                    break;
                }
            }
        }
        if half_close {
            let _ = wr.shutdown().await;
        }
        // Otherwise the write half stays open until the answer is read.
        wr
    });
    let mut out = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match rd.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => {
                    eprintln!("raw read error after {} bytes: {e}", out.len());
                    break;
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer within 20 s");
    drop(writer.await);
    String::from_utf8_lossy(&out).into_owned()
}

fn chunked(body: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / chunk * 12 + 16);
    for c in body.chunks(chunk) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// The status and JSON body of a raw HTTP/1.1 answer.
fn parse_raw(answer: &str) -> Answer {
    let status = answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer (dropped connection?): {answer:?}"));
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    // A chunked answer body: the JSON sits between the size line and the terminator.
    let json = body
        .find('{')
        .and_then(|s| body.rfind('}').map(|e| &body[s..=e]))
        .unwrap_or("");
    Answer {
        status,
        body: serde_json::from_str(json).unwrap_or(Value::Null),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_corpus_never_gets_a_5xx_and_nothing_refused_is_stored() {
    let m = manifest();
    // Every committed file is replayed, and every listed file exists.
    let listed: BTreeSet<&str> = m.case.iter().map(|c| c.file.as_str()).collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "MANIFEST.toml")
        .collect();
    let on_disk_ref: BTreeSet<&str> = on_disk.iter().map(String::as_str).collect();
    assert_eq!(
        listed, on_disk_ref,
        "MANIFEST.toml and tests/corpus/ disagree"
    );

    let h = Harness::start().await;
    let mut requests: Vec<Request> = m.case.iter().map(corpus_request).collect();
    requests.extend(generated_requests());

    let mut accepted: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut tally: BTreeMap<u16, usize> = BTreeMap::new();
    let verbose = std::env::var_os("TANDEM_BAD_INPUT_VERBOSE").is_some();
    for r in &requests {
        let a = send(&h, r).await;
        if verbose {
            eprintln!("{:>3} {} {}", a.status, r.name, a.body);
        }
        *tally.entry(a.status).or_default() += 1;
        if let Some(id) = check(r, &a) {
            accepted.insert(id, r.email.clone());
        }
    }

    // Big bodies over raw HTTP, with a Content-Length and chunked: the limit holds both ways and
    // the refusal is heard even while the client is still sending.
    let addr = h.daemon().addr;
    let head = |framing: String| {
        format!(
            "POST /hooks/website HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n{framing}Connection: close\r\n\r\n"
        )
    };
    let ten_mb = json_padded_to("ten-mb@example.com", "pad", 10 * 1024 * 1024);
    let at_limit = json_padded_to("at-limit-chunked@example.com", "pad", LIMIT);
    let over = json_padded_to("over-chunked@example.com", "pad", LIMIT + 1);
    let raw_cases: Vec<(&str, String, Vec<u8>, u16)> = vec![
        (
            "10 MB with Content-Length",
            head(format!("Content-Length: {}\r\n", ten_mb.len())),
            ten_mb.clone(),
            413,
        ),
        (
            "10 MB chunked",
            head("Transfer-Encoding: chunked\r\n".into()),
            chunked(&ten_mb, 16 * 1024),
            413,
        ),
        (
            "exactly the limit, chunked",
            head("Transfer-Encoding: chunked\r\n".into()),
            chunked(&at_limit, 7_000),
            202,
        ),
        (
            "one byte over the limit, chunked",
            head("Transfer-Encoding: chunked\r\n".into()),
            chunked(&over, 7_000),
            413,
        ),
        (
            "Content-Type with non-ASCII bytes",
            format!(
                "POST /hooks/website HTTP/1.1\r\nHost: t\r\nContent-Type: application/json; charset=\u{e9}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                br#"{"email":"ct8@example.com"}"#.len()
            ),
            br#"{"email":"ct8@example.com"}"#.to_vec(),
            415,
        ),
    ];
    for (name, head, body, want) in raw_cases {
        let answer = raw_exchange(addr, head, body, false).await;
        if verbose {
            eprintln!("raw {name}: {answer:?}");
        }
        let a = parse_raw(&answer);
        *tally.entry(a.status).or_default() += 1;
        let r = Request::generated(name, "(raw)", Vec::new(), &want.to_string(), None);
        if let Some(id) = check(&r, &a) {
            accepted.insert(id, None);
        }
    }
    eprintln!(
        "bad input: {} requests, answers by status {tally:?}, {} accepted",
        requests.len() + 5,
        accepted.len()
    );

    // Nothing half-stored: exactly the accepted leads, each with exactly its one delivery.
    let store = h.daemon().store();
    let leads = store.leads_since(vec!["website".into()], 0).await.unwrap();
    let stored: BTreeSet<&str> = leads.iter().map(|l| l.id.as_str()).collect();
    let acked: BTreeSet<&str> = accepted.keys().map(String::as_str).collect();
    assert_eq!(stored, acked, "the store holds exactly the accepted leads");
    for l in &leads {
        if let Some(Some(want)) = accepted.get(&l.id) {
            let lead: Value = serde_json::from_str(&l.lead_json).unwrap();
            assert_eq!(lead["email"], json!(want), "lead {}", l.id);
        }
    }
    let rows = |s: &[tandem::store::DestinationStatus]| -> u64 {
        s.iter()
            .map(|d| d.pending + d.in_flight + d.done + d.dead)
            .sum()
    };
    assert_eq!(
        rows(&h.status().await),
        accepted.len() as u64,
        "the outbox holds exactly one delivery per accepted lead"
    );
    // The odd leads go through the engine without upsetting it.
    let drained = h.drain(Duration::from_secs(20)).await;
    assert_eq!(rows(&drained), accepted.len() as u64);
    for path in ["/readyz", "/healthz"] {
        let r = h.http.get(h.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path} after the corpus");
    }
}

/// A client may shut down its write side once its request is out (RFC 9112 §9.6 lets a server
/// keep answering; `nc -N`, some load balancers and scripted clients do it). hyper's HTTP/1 server
/// closes such a connection at the read EOF unless `half_close(true)` is set, dropping the
/// handler mid-commit: the sender gets no answer although its lead may be stored.
#[tokio::test]
async fn a_client_that_half_closes_still_gets_its_answer() {
    let h = Harness::start().await;
    let body = br#"{"email":"half-close@example.com"}"#.to_vec();
    let head = format!(
        "POST /hooks/website HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let answer = raw_exchange(h.daemon().addr, head, body, true).await;
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer:?}");
}

// ---------------------------------------------------------------------------------------------
// Property tests. Persistence is off: a failure prints its minimal input, nothing is written.

fn fast(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Strings that are hard on parsers: any Unicode, plus NULs, controls, RTL, zero-width, BOMs,
/// escapes and template syntax.
fn weird_string() -> impl Strategy<Value = String> {
    let atoms = prop::sample::select(vec![
        "\0",
        "\u{1}",
        "\u{7f}",
        "\u{200b}",
        "\u{202e}",
        "\u{feff}",
        "\u{fffd}",
        "😀",
        "👩‍👩‍👧",
        "\\",
        "\"",
        "'",
        "{{",
        "}}",
        "{%",
        "%}",
        "${env:X}",
        "@",
        "a@b.co",
        "%",
        "%00",
        "\n",
        "\r\n",
        "=",
        "&",
        "+",
        "[",
        "]",
        "{",
        "}",
    ]);
    prop_oneof![
        any::<String>(),
        prop::collection::vec(atoms, 0..8).prop_map(|v| v.concat()),
        "[a-z0-9._%+-]{1,20}@[a-z0-9-]{1,10}\\.[a-z]{2,6}",
    ]
}

fn json_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from), // NaN and infinities become null
        Just(json!(1.7976931348623157e308)),
        Just(json!(5e-324)),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        json_number(),
        weird_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(weird_string(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// `v` wrapped in `depth` arrays or objects: deeper than serde_json's recursion limit (128).
fn nested(v: Value, depth: usize, objects: bool) -> Value {
    (0..depth).fold(v, |acc, _| {
        if objects {
            json!({ "n": acc })
        } else {
            json!([acc])
        }
    })
}

/// Lead-like objects (canonical keys with odd values, often a valid email), arbitrary values,
/// and deeply nested ones.
fn submission_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        prop::sample::select(vec![
            "email",
            "phone",
            "first_name",
            "last_name",
            "company",
            "consent",
            "landing_url",
            "utm_source",
            "gclid",
            "country",
        ])
        .prop_map(str::to_owned),
        weird_string(),
    ];
    let lead = (
        prop::option::of("[a-z0-9]{1,12}@example\\.com"),
        prop::collection::btree_map(key, json_value(), 0..6),
    )
        .prop_map(|(email, fields)| {
            let mut m: serde_json::Map<String, Value> = fields.into_iter().collect();
            if let Some(e) = email {
                m.entry("email").or_insert(Value::String(e));
            }
            Value::Object(m)
        });
    prop_oneof![
        3 => lead,
        2 => json_value(),
        1 => (json_value(), 100usize..400, any::<bool>()).prop_map(|(v, d, o)| nested(v, d, o)),
    ]
}

#[test]
fn parse_body_never_panics_on_arbitrary_bytes_and_content_types() {
    let content_type = prop_oneof![
        Just(None),
        prop::sample::select(vec![
            "application/json",
            "application/x-www-form-urlencoded",
            "APPLICATION/JSON; charset=latin1",
            "application/problem+json",
            "multipart/form-data; boundary=x",
            "text/plain",
            "",
            ";",
            "+json",
        ])
        .prop_map(|s| Some(s.to_owned())),
        any::<String>().prop_map(Some),
    ];
    let body = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        prop::collection::vec(
            prop::sample::select(vec![
                &b"{"[..],
                b"}",
                b"[",
                b"]",
                b"\"",
                b":",
                b",",
                b"\\u",
                b"d800",
                b"1e400",
                b"%",
                b"%ff",
                b"%00",
                b"=",
                b"&",
                b"+",
                b"\xef\xbb\xbf",
                b"\xff",
                b"email",
                b"a@b.co",
            ]),
            0..64
        )
        .prop_map(|v| v.concat()),
    ];
    let mut runner = TestRunner::new(fast(3000));
    runner
        .run(&(content_type, body), |(ct, body)| {
            match tandem_connectors::webhook::parse_body(ct.as_deref(), &body) {
                Ok(s) => prop_assert!(s.fields.len() <= body.len()),
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
            Ok(())
        })
        .unwrap();
    // Deep nesting straight into the parser: refused, not a stack overflow.
    for open in [b"[", b"{"] {
        let deep = if open == b"[" {
            [b"[".repeat(100_000), b"]".repeat(100_000)].concat()
        } else {
            [
                b"{\"a\":".repeat(100_000),
                b"1".to_vec(),
                b"}".repeat(100_000),
            ]
            .concat()
        };
        assert!(tandem_connectors::webhook::parse_body(Some("application/json"), &deep).is_err());
    }
}

#[test]
fn the_intake_answers_arbitrary_json_with_202_or_4xx_never_5xx() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let h = rt.block_on(Harness::start());
    let accepted = std::sync::Mutex::new(BTreeSet::<String>::new());
    let mut runner = TestRunner::new(fast(64));
    runner
        .run(&submission_value(), |v| {
            let body = serde_json::to_vec(&v).unwrap();
            let (status, answer) = rt.block_on(async {
                let r = h
                    .http
                    .post(h.url("/hooks/website"))
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .expect("an answer, not a dropped connection");
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.unwrap_or(Value::Null))
            });
            prop_assert!(
                status == 202 || (400..500).contains(&status),
                "{status} {answer}"
            );
            if status == 202 {
                let id = answer["lead_id"].as_str().unwrap_or_default().to_owned();
                prop_assert!(!id.is_empty());
                accepted.lock().unwrap().insert(id);
            } else {
                prop_assert!(
                    answer["message"].as_str().is_some_and(|m| !m.is_empty()),
                    "{status} {answer}"
                );
            }
            Ok(())
        })
        .unwrap();
    let accepted = accepted.into_inner().unwrap();
    rt.block_on(async {
        let leads = h
            .daemon()
            .store()
            .leads_since(vec!["website".into()], 0)
            .await
            .unwrap();
        let stored: BTreeSet<String> = leads.into_iter().map(|l| l.id).collect();
        assert_eq!(stored, accepted, "exactly the accepted leads are stored");
        let r = h.http.get(h.url("/readyz")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        eprintln!("arbitrary JSON: 64 cases, {} accepted", accepted.len());
        drop(h);
    });
}

/// Every error names a place inside the text (1-based) and says something.
fn assert_errors_located(text: &str, result: Result<Config, tandem::config::ConfigErrors>) {
    let lines = text.matches('\n').count() + 1;
    if let Err(errors) = result {
        assert!(!errors.0.is_empty(), "Err without any error for {text:?}");
        for e in &errors.0 {
            assert!(!e.message.trim().is_empty(), "empty message: {e:?}");
            if let Some(line) = e.line {
                assert!(
                    (1..=lines).contains(&line),
                    "line {line} outside 1..={lines}: {e}\n--- text ---\n{text}"
                );
                assert!(e.column.is_none_or(|c| c >= 1), "column 0: {e}");
            }
            let _ = e.to_string();
        }
    }
}

#[test]
fn config_loading_never_panics_and_locates_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tandem.toml");
    let reference =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/tandem.toml"))
            .unwrap();
    let harness = common::config_text("http://127.0.0.1:9", &dir.path().join("tandem.db"), "", "");
    // The harness config is valid as written, so mutations of it reach the deeper checks.
    assert!(Config::from_str_at(&harness, &path).is_ok());

    let mut runner = TestRunner::new(fast(300));
    let arbitrary = prop_oneof![
        any::<String>(),
        prop::collection::vec(
            prop::sample::select(vec![
                "[daemon]\n",
                "[connectors.x]\n",
                "[flows.f]\n",
                "[flows.f.fields]\n",
                "kind = \"hubspot\"\n",
                "kind = \"webhook\"\n",
                "from = [\"x\"]\n",
                "to = \"x\"\n",
                "listen = \"",
                "email = \"{{ lead.email \"\n",
                "\"${env:NOPE}\"",
                "${file:/nonexistent}",
                "=",
                "\n",
                "[[",
                "]]",
                "\"\"\"",
                "'''",
                "\u{feff}",
                "\0",
                "é",
                "1e400",
                "99999999999999999999999",
                "\r",
                "#",
            ]),
            0..24,
        )
        .prop_map(|v| v.concat()),
    ];
    runner
        .run(&arbitrary, |text| {
            assert_errors_located(&text, Config::from_str_at(&text, &path));
            Ok(())
        })
        .unwrap();

    // Mutations of real configs: delete a line, duplicate a line, replace a character.
    for base in [reference, harness] {
        let lines: Vec<String> = base.lines().map(str::to_owned).collect();
        let n = lines.len();
        let mutation = (0..3u8, 0..n, any::<prop::sample::Index>(), any::<char>());
        let mut runner = TestRunner::new(fast(400));
        runner
            .run(&mutation, |(op, line, at, ch)| {
                let mut ls = lines.clone();
                match op {
                    0 => {
                        ls.remove(line);
                    }
                    1 => ls.insert(line, ls[line].clone()),
                    _ => {
                        let mut chars: Vec<char> = ls[line].chars().collect();
                        if chars.is_empty() {
                            chars.push(ch);
                        } else {
                            let i = at.index(chars.len());
                            chars[i] = ch;
                        }
                        ls[line] = chars.into_iter().collect();
                    }
                }
                let text = ls.join("\n");
                assert_errors_located(&text, Config::from_str_at(&text, &path));
                Ok(())
            })
            .unwrap();
    }
}

#[test]
fn field_templates_never_panic_on_arbitrary_templates_and_contexts() {
    // No `*` or `range`: a template may legitimately build a huge string or loop for long.
    let fragment = prop::sample::select(vec![
        "{{",
        "}}",
        "{%",
        "%}",
        "{#",
        "#}",
        " ",
        "lead",
        ".",
        "email",
        "custom",
        "[0]",
        "['x']",
        "|",
        "default(",
        "'direct'",
        ")",
        "upper",
        "lower",
        "trim",
        "split",
        "first",
        "last",
        "join(',')",
        "length",
        "int",
        "float",
        "string",
        "replace('a', 'b')",
        "if",
        "else",
        "endif",
        "for x in lead",
        "endfor",
        "set y = 1",
        "~",
        "+",
        "-",
        "/",
        "//",
        "%",
        "==",
        "and",
        "not",
        "none",
        "true",
        "1",
        "0",
        "1e400",
        "99999999999999999999",
        "\"",
        "'",
        "(",
        "[",
        "]",
        "{",
        "}",
        "loop.index",
        "raw",
        "endraw",
        "macro m()",
        "endmacro",
        "m()",
        "filter upper",
        "endfilter",
        "\0",
        "é",
        "\u{202e}",
    ]);
    let template = prop_oneof![
        any::<String>(),
        prop::collection::vec(fragment, 0..16).prop_map(|v| v.concat()),
    ];
    let fields = prop::collection::btree_map(weird_string(), template, 1..4);
    let ctx = prop_oneof![
        json_value(),
        json_value().prop_map(|lead| json!({ "lead": lead })),
        (json_value(), json_value())
            .prop_map(|(email, custom)| json!({"lead": {"email": email, "custom": custom}})),
    ];
    let mut runner = TestRunner::new(fast(1500));
    runner
        .run(&(fields, ctx), |(fields, ctx)| {
            match FieldTemplates::compile(&fields) {
                Ok(t) => {
                    prop_assert_eq!(t.names().count(), fields.len());
                    match t.render(&ctx) {
                        Ok(out) => prop_assert!(out.values().all(|v| !v.trim().is_empty())),
                        Err(e) => prop_assert!(fields.contains_key(&e.field)),
                    }
                }
                Err(errors) => prop_assert!(
                    !errors.is_empty() && errors.iter().all(|(f, _)| fields.contains_key(f))
                ),
            }
            Ok(())
        })
        .unwrap();
}
