//! The formats that are one encoding of the certificate(s) and nothing else: nginx, Apache
//! httpd, AWS ALB (PEM), HAProxy (DER in hex or base64) and Traefik (base64 DER list).

use super::text::{Bad, Certs, base64, contains, hex, percent_decode, trim, unquote};

/// PEM, URL-encoded or not, with any whitespace for line breaks.
///
/// - **nginx** (`src/event/ngx_event_openssl.c`): `$ssl_client_escaped_cert` is the PEM
///   through `ngx_escape_uri(.., NGX_ESCAPE_URI_COMPONENT)`; the deprecated
///   `$ssl_client_cert` is the PEM without its last newline and with a tab after every
///   other newline (meant for `proxy_set_header`, but a folded header that HTTP/1.1 parsers
///   such as hyper's refuse). With no client certificate both are empty, and nginx then
///   sends no header at all.
/// - **Apache httpd** (`modules/metadata/mod_headers.c`, `header_request_ssl_var` and
///   `unwrap_header`): `RequestHeader set H "%{SSL_CLIENT_CERT}s"` turns every CR and LF of
///   the PEM into a space, and sends `(null)` when the variable is empty. An
///   `expr=%{escape:...}` value arrives URL-encoded.
/// - **AWS ALB** (Elastic Load Balancing guide, "HTTP headers and mutual TLS"):
///   `X-Amzn-Mtls-Clientcert` (passthrough mode) is the URL-encoded PEM of the chain, leaf
///   first and ending with the root; `X-Amzn-Mtls-Clientcert-Leaf` (verify mode) is the
///   leaf alone.
///
/// A `%` never occurs in PEM, so a value with one is percent-decoded first.
pub(super) fn pem(value: &[u8], out: &mut Certs) -> Result<(), Bad> {
    let value = unquote(value);
    if contains(value, b'%') {
        out.push_pem(&percent_decode(value)?)
    } else {
        out.push_pem(value)
    }
}

/// HAProxy: `%[ssl_c_der,hex]` (uppercase hex) or `%[ssl_c_der,base64]`, bare or quoted
/// with `%{+Q}`; `ssl_c_chain_der` is the DER of every certificate of
/// `SSL_get_peer_cert_chain` concatenated, which on a server is the chain *without* the
/// leaf (HAProxy `src/ssl_sample.c`, `smp_fetch_ssl_x_chain_der`; the fetch's commit
/// message shows `%[ssl_c_chain_der,hex]`, Keycloak's guide `base64`). A fetch that finds
/// nothing leaves the header empty.
///
/// A value made only of hex digits is hex (a DER certificate's base64 starts with `M`).
pub(super) fn haproxy(value: &[u8], out: &mut Certs) -> Result<(), Bad> {
    let value = unquote(value);
    let der = if value.iter().all(u8::is_ascii_hexdigit) {
        hex(value).map_err(|e| Bad::Malformed(format!("bad hex ({e})")))?
    } else if value.starts_with(b"-----") {
        return Err("it is PEM; HAProxy sends DER with the `hex` or `base64` converter".into());
    } else {
        base64(value)
            .map_err(|e| Bad::Malformed(format!("neither hex nor base64 (base64 decoder: {e})")))?
    };
    out.push_concatenated(&der)
}

/// Traefik `passTLSClientCert` with `pem: true` (`pkg/middlewares/passtlsclientcert/
/// pass_tls_client_cert.go`): for each of the client's certificates, leaf first, the PEM
/// with its BEGIN/END lines and newlines removed (base64 DER), joined with `,`. Traefik 2
/// also URL-escaped each one (`url.QueryEscape`), which is decoded when a `%` is present.
pub(super) fn traefik(value: &[u8], out: &mut Certs) -> Result<(), Bad> {
    let value = unquote(value);
    for item in value.split(|b| *b == b',') {
        let item = trim(item);
        if item.is_empty() {
            return Err("the list has an empty member (two commas, or a trailing comma)".into());
        }
        let decoded;
        let item = if contains(item, b'%') {
            decoded = percent_decode(item)?;
            trim(&decoded)
        } else {
            item
        };
        if item.starts_with(b"-----BEGIN") {
            out.push_pem(item)?;
            continue;
        }
        let der = base64(item)
            .map_err(|e| Bad::Malformed(format!("a certificate is not base64 DER ({e})")))?;
        out.push(der)?;
    }
    Ok(())
}
