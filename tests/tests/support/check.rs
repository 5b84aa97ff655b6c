//! What a client saw, and the assertions of the matrix: accepted (with the identity
//! checked) or refused (with the reason checked as far as the client can tell).

use super::pki::Case;
use super::proc::Output;

/// The result of one request.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// An HTTP answer.
    Http { status: u16, body: String },
    /// No HTTP answer: the client's error message.
    Failed { error: String },
}

impl Outcome {
    /// Reads the output of our client scripts (Python, Node, Go): `STATUS <code>` on the
    /// first line and the body after it, or `ERROR <message>`.
    pub fn from_script(out: &Output) -> Self {
        if let Some(rest) = out.stdout.strip_prefix("STATUS ") {
            let (code, body) = rest.split_once('\n').unwrap_or((rest, ""));
            if let Ok(status) = code.trim().parse() {
                return Self::Http {
                    status,
                    body: body.to_owned(),
                };
            }
        }
        let error = match out.stdout.strip_prefix("ERROR ") {
            Some(e) => e.trim().to_owned(),
            None => format!(
                "unexpected output ({}): stdout {:?} stderr {:?}",
                out.status, out.stdout, out.stderr
            ),
        };
        Self::Failed { error }
    }

    /// Reads a raw HTTP/1.x response (e.g. what `openssl s_client` printed).
    pub fn from_raw_http(raw: &str, error: &str) -> Self {
        let Some(status_line) = raw.lines().find(|l| l.starts_with("HTTP/1.")) else {
            return Self::Failed {
                error: error.to_owned(),
            };
        };
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = raw
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Self::Http { status, body }
    }

    fn describe(&self) -> String {
        match self {
            Self::Http { status, body } => format!("HTTP {status}: {body}"),
            Self::Failed { error } => format!("failed: {error}"),
        }
    }
}

/// Asserts a 200 whose JSON body (our `/whoami`) names `cn` as `common_name`.
pub fn assert_whoami(who: &str, out: &Outcome, cn: &str) -> String {
    let Outcome::Http { status: 200, body } = out else {
        panic!("{who}: expected 200 from /whoami, got {}", out.describe());
    };
    let json: serde_json::Value = serde_json::from_str(body.trim())
        .unwrap_or_else(|e| panic!("{who}: /whoami body is not JSON ({e}): {body:?}"));
    assert_eq!(json["common_name"], cn, "{who}: wrong identity in {json}");
    assert!(
        json["serial"].as_str().is_some_and(|s| !s.is_empty()),
        "{who}: no serial in {json}"
    );
    assert!(
        json["subject"]
            .as_str()
            .is_some_and(|s| s.contains(&format!("CN={cn}"))),
        "{who}: subject in {json}"
    );
    format!("200, common_name={cn}")
}

/// Asserts an HTTP answer with `status` whose body contains `needle`.
pub fn assert_http(who: &str, out: &Outcome, status: u16, needle: &str) -> String {
    match out {
        Outcome::Http { status: s, body } if *s == status && body.contains(needle) => {
            format!("{status} {needle:?}")
        }
        _ => panic!(
            "{who}: expected HTTP {status} containing {needle:?}, got {}",
            out.describe()
        ),
    }
}

/// How each peer words the TLS alert a refusing server sends for `case` (lower case):
/// OpenSSL (`tlsv13 alert certificate required`), Go (`remote error: tls: ...`),
/// rustls (`received fatal alert: CertificateRequired`), Node's error codes.
fn alert_words(case: Case) -> &'static [&'static str] {
    match case {
        Case::Good => &[],
        Case::NoCert => &[
            "certificate required",
            "certificaterequired",
            "certificate_required",
        ],
        Case::OtherCa => &[
            "unknown ca",
            "unknownca",
            "unknown_ca",
            "unknown certificate authority",
        ],
        Case::Revoked => &[
            "certificate revoked",
            "certificaterevoked",
            "certificate_revoked",
            "revoked certificate",
        ],
    }
}

/// How a peer words a connection the server closed before the client read the alert
/// (TLS 1.3: the client's side of the handshake is done when the server refuses it, so
/// a reset can overtake the alert).
const CLOSED_WORDS: &[&str] = &[
    "connection reset",
    "econnreset",
    "broken pipe",
    "epipe",
    "unexpected eof",
    "socket hang up",
    "connection closed",
    "remotedisconnected",
    "connection aborted",
    "server disconnected",
    "closed connection",
    "eof occurred",
    // curl 7.88 (exit 55) when the reset arrives before it sends the request
    "transport endpoint is not connected",
    "recv failure",
    // hyper's client over HTTP/2 when the connection ends before the request is sent
    // (the connection task has the TLS error; the request only sees this)
    "channel closed",
    // hyper-util's pool: the connection died while the request waited for it
    "connection was not ready",
];

/// Asserts that the connection was refused at the TLS level for `case`: no HTTP answer,
/// and an error naming the alert for `case` or a connection closed by the server. Fails
/// on any other error (e.g. the client refusing the *server*, or a file it could not
/// read), since that would not be a refusal by the server. Returns what was seen.
pub fn assert_refused(who: &str, out: &Outcome, case: Case) -> String {
    let Outcome::Failed { error } = out else {
        panic!(
            "{who}: {} must be refused in the handshake, got {}",
            case.label(),
            out.describe()
        );
    };
    let lower = error.to_lowercase();
    if let Some(word) = alert_words(case).iter().find(|w| lower.contains(*w)) {
        return format!("alert: {word}");
    }
    if let Some(word) = CLOSED_WORDS.iter().find(|w| lower.contains(*w)) {
        return format!("closed before the alert was read ({word})");
    }
    panic!(
        "{who}: {} failed, but not with the expected alert ({:?}) or a closed connection: {error}",
        case.label(),
        alert_words(case)
    );
}

/// Prints one cell of the matrix (visible with `--nocapture`).
pub fn record(client: &str, server: &str, case: Case, what: &str) {
    println!("MATRIX | {client} | {server} | {} | {what}", case.label());
}
