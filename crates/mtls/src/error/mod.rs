//! The crate's error type.
//!
//! Every variant that concerns a file names it, says what is wrong with it and how to
//! fix it. The messages are written for the person who made the files, usually with the
//! `openssl` command line, so the fixes are given as `openssl` commands where that helps.
//!
//! # Causes: printed or returned, never both
//!
//! A message that prints a cause's text must not also return that cause from
//! [`source`](std::error::Error::source), or error reporters (`{:#}` with anyhow, `eyre`,
//! a loop over `source()`) print the same text twice. The crate's error types follow
//! one rule:
//!
//! - **When the cause is the explanation, it is printed and not returned.** The people
//!   who read these messages mostly print them with `{}`; "No such file or directory" or
//!   rustls' reason belongs in that line. Every variant of [`Error`] that has a cause
//!   (`Io`, `UnsupportedKey`, `Rustls`, `Verifier`, `Watch`) prints it and returns
//!   nothing from `source()`; the cause stays in a public field (`error`, or the tuple
//!   field) for callers that match on it. [`HandshakeError`](crate::HandshakeError)'s
//!   `Tls` and `Extract` print their cause and return only the cause's *own* source,
//!   which the message does not print (as `#[error(transparent)]` does for
//!   [`Error::Policy`]).
//! - **A cause that the message does not print is returned.** Only
//!   [`ExtractError::with_source`](crate::ExtractError::with_source) carries one: its
//!   message is the caller's, the cause (say, a database error) is returned from
//!   `source()`. If the message already contains the cause's text, the cause is not
//!   returned, but stays reachable through
//!   [`ExtractError::cause`](crate::ExtractError::cause).
//!
//! The other error types ([`Rejection`], [`Denied`](crate::Denied),
//! [`PolicyError`], [`IdentityError`](crate::identity::IdentityError),
//! [`SpiffeIdError`](crate::SpiffeIdError)) have no source; a nested reason (such as
//! [`SpiffeIdError::InvalidInCertificate`](crate::SpiffeIdError::InvalidInCertificate)'s)
//! is printed and kept in a field.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::policy::PolicyError;
use crate::verify::Rejection;

mod messages;
mod role;

use messages::{list_or_none, missing_ca, present_eku};
pub use role::Role;

/// Shorthand for `Result<T, mtls::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while loading material and building configurations.
///
/// Match on the variant to tell failures apart; print it (`{}`) for a message that names
/// the file, says what is wrong and how to fix it.
///
/// A variant with an underlying cause (an I/O error, rustls' or notify's error) prints it
/// in the message and keeps it in a public field, but does not return it from
/// [`source`](std::error::Error::source), so `{:#}` and error-reporter chains show it
/// once.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error (printed in the message, not returned by `source()`).
        error: std::io::Error,
    },

    /// Fetched revocation data (CRL URLs, distribution points, OCSP) is configured in a
    /// way that cannot work; the message says how to fix it.
    #[error("revocation: {reason}")]
    Revocation {
        /// What is wrong and how to fix it.
        reason: String,
    },

    /// The file is empty.
    #[error(
        "{} is empty: expected PEM data (\"-----BEGIN ...-----\") or DER. \
         Check that the file was copied completely",
        path.display()
    )]
    Empty {
        /// The file.
        path: PathBuf,
    },

    /// The file is neither PEM nor DER.
    #[error(
        "{} is not PEM or DER: it has no \"-----BEGIN {expected}-----\" line and does not \
         parse as DER. Convert it with `openssl x509 -in FILE -out FILE.pem` \
         (certificates) or `openssl pkey -in FILE -out FILE.pem` (keys)",
        path.display()
    )]
    NotPem {
        /// The file.
        path: PathBuf,
        /// The PEM label that was expected, e.g. `CERTIFICATE`.
        expected: &'static str,
    },

    /// A PKCS#12 (`.p12` / `.pfx`) file was given where a PEM or DER certificate, key or
    /// CRL is expected.
    #[error(
        "{} is a PKCS#12 (.p12/.pfx) file, not a PEM or DER certificate or key: load it with \
         `.identity_pkcs12(path, password)` (`--p12 FILE --password-file FILE` in the \
         examples), or `.ca_pkcs12(path, password)` for a bundle of CA certificates; or \
         convert it: `openssl pkcs12 -in FILE -nokeys -out cert.pem` and `openssl pkcs12 -in \
         FILE -nocerts -nodes -out key.pem`",
        path.display()
    )]
    IsPkcs12 {
        /// The file.
        path: PathBuf,
    },

    /// The PEM data is damaged (bad base64, a missing END line, a truncated file).
    #[error(
        "{} has damaged PEM data ({detail}); the file may be truncated or have been edited. \
         Copy it again from its source",
        path.display()
    )]
    BadPem {
        /// The file.
        path: PathBuf,
        /// What the PEM parser reported.
        detail: String,
    },

    /// No certificate was found in a file that must hold one.
    #[error(
        "{} holds no certificate (no \"-----BEGIN CERTIFICATE-----\" block){hint}",
        path.display()
    )]
    NoCertificate {
        /// The file.
        path: PathBuf,
        /// Extra advice, e.g. that the file holds a key instead.
        hint: &'static str,
    },

    /// A certificate in the file is not valid X.509.
    #[error(
        "certificate #{index} in {} is not a valid X.509 certificate ({detail}). \
         Check it with `openssl x509 -in {} -noout -text`",
        path.display(), path.display()
    )]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// Position of the certificate in the file, from 1.
        index: usize,
        /// What the parser reported.
        detail: String,
    },

    /// A certificate of this side's own chain is X.509 version 1 (or 2): it has no
    /// extensions, and TLS libraries refuse it.
    #[error(
        "certificate #{index} (\"{subject}\") in {} is an X.509 v{version} certificate (no \
         extensions), which TLS libraries refuse. `openssl x509 -req` and `openssl ca` make \
         v1 certificates when given no extensions: sign it again with `-extfile FILE` (or \
         `-extensions SECTION`) giving basicConstraints, keyUsage, extendedKeyUsage and \
         subjectAltName, e.g. `basicConstraints=CA:FALSE`, \
         `keyUsage=digitalSignature,keyEncipherment`, `extendedKeyUsage=serverAuth` (or \
         clientAuth) and `subjectAltName=DNS:your.host.name`",
        path.display()
    )]
    NotX509V3 {
        /// The file.
        path: PathBuf,
        /// Position of the certificate in the file, from 1.
        index: usize,
        /// The certificate's subject.
        subject: String,
        /// Its X.509 version (1 or 2).
        version: u32,
    },

    /// No private key was found in a file that must hold one.
    #[error(
        "{} holds no private key (no \"-----BEGIN PRIVATE KEY-----\", \"RSA PRIVATE KEY\" \
         or \"EC PRIVATE KEY\" block){hint}",
        path.display()
    )]
    NoPrivateKey {
        /// The file.
        path: PathBuf,
        /// Extra advice, e.g. that the file holds a certificate instead.
        hint: &'static str,
    },

    /// The file holds more than one private key.
    #[error(
        "{} holds {count} private keys; keep only the key that belongs to the certificate",
        path.display()
    )]
    MultipleKeys {
        /// The file.
        path: PathBuf,
        /// How many keys were found.
        count: usize,
    },

    /// The private key is encrypted with a passphrase and no password was given.
    #[error(
        "the private key in {} is encrypted with a passphrase and no password was given; \
         give it with `.key_password(Password::from_file(\"key.pass\"))` (or \
         `Password::from_env`; `--password-file FILE` in the examples), or write an \
         unencrypted copy with `openssl pkey -in {} -out key.pem` and protect that file \
         with file permissions (chmod 600) instead",
        path.display(), path.display()
    )]
    EncryptedKey {
        /// The file.
        path: PathBuf,
    },

    /// The password given does not decrypt the key or the PKCS#12 file.
    #[error(
        "the password for {} is wrong: it does not decrypt the file (the key itself is \
         not the problem). Check the password that {from} supplies (a password file is \
         read up to its first line break)",
        path.display()
    )]
    WrongPassword {
        /// The encrypted file.
        path: PathBuf,
        /// Where the password came from ("file /run/secrets/pass", "environment
        /// variable KEY_PASS"); never the password.
        from: String,
    },

    /// The password could not be read (missing file, unset variable, failed callback).
    #[error("cannot get the password for {} from {from}: {reason}", path.display())]
    PasswordUnavailable {
        /// The encrypted file.
        path: PathBuf,
        /// Where the password was to come from.
        from: String,
        /// What went wrong.
        reason: String,
    },

    /// The file is encrypted with a scheme or cipher this crate does not decrypt.
    #[error(
        "{} is encrypted with {cipher}, which mtls does not decrypt; convert it to \
         AES-256-CBC with PBKDF2 (it asks for the password): `{convert}`",
        path.display()
    )]
    UnsupportedEncryption {
        /// The file.
        path: PathBuf,
        /// The cipher, KDF or scheme, by name (`camellia-256-cbc`, `PBE-SHA1-RC4-128`).
        cipher: String,
        /// The `openssl` command that rewrites the file in a supported form.
        convert: String,
    },

    /// An encrypted key or a PKCS#12 file is cut short or corrupt.
    #[error(
        "{} is truncated or corrupt: {detail}. Copy or export the file again",
        path.display()
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },

    /// A file given as PKCS#12 is not one, or holds something this crate does not read.
    #[error("{} is not a usable PKCS#12 file: {detail}", path.display())]
    BadPkcs12 {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        detail: String,
    },

    /// A [`KeySigner`](crate::signer::KeySigner) (a KMS, a PKCS#11 token) did not sign
    /// the test message at build or reload.
    #[error(
        "the signing key for the certificate in {} cannot sign: {reason}",
        path.display()
    )]
    SignerFailed {
        /// The certificate file the key belongs to.
        path: PathBuf,
        /// What the signer reported.
        reason: String,
    },

    /// A [`KeySigner`](crate::signer::KeySigner) signs with a key that is not the
    /// certificate's.
    #[error(
        "{signer} does not hold the key of the certificate in {}: its test signature does \
         not verify with the certificate's public key. Give the certificate issued for \
         that key, or point at the key the certificate was made for",
        cert.display()
    )]
    SignerKeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The signer, as it describes itself (`KeySigner::describe`).
        signer: String,
    },

    /// A PKCS#11 token, key or module could not be used.
    #[error("PKCS#11: {reason}")]
    Pkcs11 {
        /// What went wrong and how to fix it (module path, token, key label).
        reason: String,
    },

    /// An SNI identity's certificate is not valid for the name it is to be served for.
    #[error(
        "the certificate in {} is configured for the server name {name:?} (SNI), but is not \
         valid for it (its names: {}); issue it with `subjectAltName=DNS:{name}`, or \
         configure it under one of its names",
        path.display(), list_or_none(names)
    )]
    SniNameMismatch {
        /// The certificate (or PKCS#12) file.
        path: PathBuf,
        /// The SNI name it was configured for.
        name: String,
        /// The DNS and IP names of the certificate.
        names: Vec<String>,
    },

    /// The same SNI name was given twice, or a name is not a DNS name.
    #[error(
        "the SNI name {name:?} {reason}; give each server name once, as a DNS name \
         (`api.example.com`, or `*.example.com` for one label)"
    )]
    InvalidSniName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A PKCS#12 identity holds a key but no certificate for it.
    #[error(
        "no certificate in {} matches its private key; export the key with its own \
         certificate: `openssl pkcs12 -export -in cert.pem -inkey key.pem -certfile \
         chain.pem -out {}`",
        path.display(), path.display()
    )]
    Pkcs12NoMatchingCertificate {
        /// The file.
        path: PathBuf,
    },

    /// The private key's type is not supported by the crypto provider.
    #[error(
        "the private key in {} cannot be used ({error}); supported are RSA (2048 bits or \
         more), ECDSA P-256/P-384 and Ed25519 keys in PKCS#8, PKCS#1 or SEC1 form",
        path.display()
    )]
    UnsupportedKey {
        /// The file.
        path: PathBuf,
        /// What rustls reported (printed in the message, not returned by `source()`).
        error: rustls::Error,
    },

    /// The private key is an RSA-PSS key (`openssl genpkey -algorithm RSA-PSS`), which the
    /// crypto providers cannot load.
    #[error(
        "the private key in {} is an RSA-PSS key (PKCS#8 algorithm rsassaPss), which the \
         crypto provider cannot load ({error}). Use a plain RSA key: make one with \
         `openssl genrsa -out key.pem 2048` (or an EC key: `openssl ecparam -genkey -name \
         prime256v1 -noout -out key.pem`) and issue the certificate again for it; RSA \
         certificates still sign TLS 1.3 handshakes with RSA-PSS",
        path.display()
    )]
    RsaPssKey {
        /// The key file.
        path: PathBuf,
        /// What rustls reported (printed in the message, not returned by `source()`).
        error: rustls::Error,
    },

    /// The EC key (or its certificate) has explicit curve parameters.
    #[error(
        "the EC key in {} has explicit curve parameters (`-param_enc explicit`), which TLS \
         cannot use (and which makes the key and certificate look mismatched). Convert the \
         key to a named curve with `openssl ec -in KEY -param_enc named_curve -out \
         key.named.pem`, and issue the certificate again from the converted key",
        path.display()
    )]
    ExplicitEcParameters {
        /// The key file.
        path: PathBuf,
    },

    /// The private key does not belong to the certificate.
    #[error(
        "the private key in {} does not match the certificate in {} (\"key values mismatch\"). \
         Compare `openssl x509 -in {} -noout -pubkey | sha256sum` with \
         `openssl pkey -in {} -pubout | sha256sum` and use the key the certificate was \
         made for",
        key.display(), cert.display(), cert.display(), key.display()
    )]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },

    /// The leaf certificate has expired.
    #[error(
        "the certificate \"{subject}\" in {} expired on {} (\"certificate has expired\"); \
         issue a new one and replace the file",
        path.display(), fmt_time(*not_after)
    )]
    Expired {
        /// The file.
        path: PathBuf,
        /// The certificate's subject.
        subject: String,
        /// When it expired.
        not_after: SystemTime,
    },

    /// The leaf certificate is not valid yet.
    #[error(
        "the certificate \"{subject}\" in {} is not valid until {} (\"certificate is not yet \
         valid\"); check this machine's clock, or the dates the certificate was issued with",
        path.display(), fmt_time(*not_before)
    )]
    NotYetValid {
        /// The file.
        path: PathBuf,
        /// The certificate's subject.
        subject: String,
        /// When it becomes valid.
        not_before: SystemTime,
    },

    /// A CA certificate (basicConstraints `CA:TRUE`) is used as a leaf.
    #[error(
        "the {role} certificate \"{subject}\" in {} is a CA certificate (basicConstraints \
         CA:TRUE), and TLS peers refuse a CA certificate as a {role} identity. This happens \
         when it was signed with `-extensions v3_ca` (or an extension file that sets \
         basicConstraints=CA:TRUE). Sign it again with an extension file that says \
         `basicConstraints=CA:FALSE` and `extendedKeyUsage={}`",
        path.display(), role.required_eku()
    )]
    CaCertificateAsLeaf {
        /// The file.
        path: PathBuf,
        /// The certificate's subject.
        subject: String,
        /// The role it was loaded for.
        role: Role,
    },

    /// A server certificate has no subjectAltName extension.
    #[error(
        "the server certificate \"{subject}\" in {} has no subjectAltName: clients match the \
         host name against subjectAltName only, never against the CN. Sign it again with \
         `-extfile` holding `subjectAltName=DNS:your.host.name` (and `IP:…` for addresses)",
        path.display()
    )]
    NoSubjectAltName {
        /// The file.
        path: PathBuf,
        /// The certificate's subject.
        subject: String,
    },

    /// The leaf's extended key usage does not allow the role it is used for.
    #[error(
        "the certificate \"{subject}\" in {} cannot be used as a {role} identity: its \
         extendedKeyUsage lists {} but not {}. Sign it again with `extendedKeyUsage={}` \
         (or `serverAuth,clientAuth` for both roles)",
        path.display(), present_eku(present), role.required_eku(), role.required_eku()
    )]
    WrongExtendedKeyUsage {
        /// The file.
        path: PathBuf,
        /// The certificate's subject.
        subject: String,
        /// The role it was loaded for.
        role: Role,
        /// The usages it does list.
        present: Vec<String>,
    },

    /// The identity's chain does not lead to a configured CA.
    #[error(
        "the certificate \"{subject}\" in {} was issued by \"{issuer}\", which is neither in \
         that file nor among the configured CAs ({}) (\"unable to get local issuer \
         certificate\"). If \"{issuer}\" is an intermediate CA, append its certificate to the \
         file, leaf first: `cat leaf.crt intermediate.crt > chain.crt`; otherwise configure \
         the CA that issued it (or, when the peers trust a CA this side is not given, turn \
         this check off with `.check_identity_chain(false)`)",
        path.display(), list_or_none(known_cas)
    )]
    UnknownIssuer {
        /// The identity file.
        path: PathBuf,
        /// The subject of the certificate whose issuer is missing.
        subject: String,
        /// The missing issuer.
        issuer: String,
        /// Subjects of the CAs that were configured.
        known_cas: Vec<String>,
    },

    /// A chain that leads to a configured CA failed verification.
    #[error(
        "the certificate chain in {} does not verify against the configured CAs: {reason}",
        path.display()
    )]
    ChainInvalid {
        /// The identity file.
        path: PathBuf,
        /// Why, as a verifier would refuse it in a handshake.
        reason: Rejection,
    },

    /// A certificate in a CA bundle is not a CA certificate.
    #[error(
        "certificate #{index} (\"{subject}\") in the CA file {} is not a CA certificate \
         (basicConstraints CA:TRUE is missing), so it cannot issue certificates. Put the CA's \
         certificate in that file, not a leaf",
        path.display()
    )]
    NotACa {
        /// The CA file.
        path: PathBuf,
        /// Position of the certificate in the file, from 1.
        index: usize,
        /// The certificate's subject.
        subject: String,
    },

    /// A CA certificate has expired.
    #[error(
        "the CA certificate \"{subject}\" in {} expired on {}; every certificate it issued \
         is now refused. Replace it",
        path.display(), fmt_time(*not_after)
    )]
    CaExpired {
        /// The CA file.
        path: PathBuf,
        /// The CA's subject.
        subject: String,
        /// When it expired.
        not_after: SystemTime,
    },

    /// A CRL is damaged or not signed by any configured CA.
    #[error("the CRL in {} cannot be used: {reason}", path.display())]
    BadCrl {
        /// The CRL file.
        path: PathBuf,
        /// Why, in words.
        reason: String,
    },

    /// A CRL is version 1: it has no extensions (no CRL number), and the verifier reads
    /// only version 2 CRLs.
    #[error(
        "the CRL in {} (from \"{issuer}\") is a version 1 CRL, which the certificate \
         verifier cannot read: `openssl ca -gencrl` writes version 1 when the CA has no \
         CRL number. Create one (`echo 1000 > crlnumber` and `crlnumber = $dir/crlnumber` in \
         the `[CA_default]` section of the CA's openssl.cnf) and generate the CRL again",
        path.display()
    )]
    CrlNotV2 {
        /// The CRL file.
        path: PathBuf,
        /// The CRL's issuer.
        issuer: String,
    },

    /// A CRL's issuer is none of the configured CAs (nor a CA in this side's own chain), so
    /// it revokes nothing this side verifies.
    #[error(
        "the CRL in {} is issued by \"{issuer}\", which is not a configured CA ({}) nor a CA \
         in this side's own certificate chain, so it would revoke nothing (and with unknown \
         revocation status allowed, revocation would silently be off). Configure the CRL \
         of the CA that issues the peers' certificates, or add that CA (for an \
         intermediate: its certificate) with `.ca(path)`",
        path.display(), known_cas.join("; ")
    )]
    CrlIssuerUnknown {
        /// The CRL file.
        path: PathBuf,
        /// The CRL's issuer.
        issuer: String,
        /// The subjects of the configured CAs.
        known_cas: Vec<String>,
    },

    /// A reloaded CRL is older than the one in force for the same issuer: loading it would
    /// un-revoke certificates.
    #[error(
        "the CRL in {} from \"{issuer}\" is older than the one in force ({offered}, against \
         {in_force}): loading it would un-revoke certificates, so the CRL in force is kept. \
         Publish the CA's newest CRL (`openssl ca -gencrl` with `crlnumber` set)",
        path.display()
    )]
    CrlRollback {
        /// The CRL file.
        path: PathBuf,
        /// The CRL's issuer.
        issuer: String,
        /// The newest CRL in force from that issuer (number and thisUpdate).
        in_force: String,
        /// The CRL offered.
        offered: String,
    },

    /// The CRL files no longer hold a CRL from a configured CA that had one in force.
    #[error(
        "the CRL files no longer hold a CRL from \"{issuer}\" (it was in {}), although that \
         CA is still trusted: its revocations would be lost, so the CRLs in force are kept. \
         Put the CA's current CRL back, or stop trusting the CA",
        was.display()
    )]
    CrlMissing {
        /// The issuer whose CRL went missing.
        issuer: String,
        /// The file it was read from.
        was: PathBuf,
    },

    /// A CRL is past its nextUpdate while expired CRLs are refused
    /// (`enforce_crl_expiry`).
    #[error(
        "the CRL in {} from \"{issuer}\" expired (nextUpdate {}); with enforce_crl_expiry \
         every peer it covers would be refused. Publish a fresh CRL \
         (`openssl ca -gencrl`)",
        path.display(), fmt_time(*next_update)
    )]
    CrlExpired {
        /// The CRL file.
        path: PathBuf,
        /// The CRL's issuer.
        issuer: String,
        /// Its nextUpdate.
        next_update: SystemTime,
    },

    /// The identity's own certificate is revoked by a configured CRL.
    #[error(
        "the certificate \"{subject}\" in {} (serial {serial}) is revoked by a configured CRL \
         (\"certificate revoked\"); issue a new certificate",
        path.display()
    )]
    Revoked {
        /// The identity file.
        path: PathBuf,
        /// The certificate's subject.
        subject: String,
        /// Its serial, hex.
        serial: String,
    },

    /// The builder was given no certificate and key for its own side.
    #[error(
        "no {role} identity: call `.identity(cert, key)` with the {role} certificate chain \
         (leaf first) and its private key"
    )]
    MissingIdentity {
        /// The side being built.
        role: Role,
    },

    /// The builder was given no CA to verify its peers with.
    #[error("{}", missing_ca(*role))]
    MissingCa {
        /// The side being built: a server misses the CA of its clients, a client the CA
        /// of its servers.
        role: Role,
    },

    /// The name given to [`ClientBuilder::server_name`](crate::ClientBuilder::server_name)
    /// is neither a DNS name nor an IP address.
    #[error(
        "the server name {name:?} is not a valid DNS name or IP address; give the host name \
         (or address) the server's certificate is issued for, without a scheme, port or path"
    )]
    InvalidServerName {
        /// The name as given.
        name: String,
    },

    /// [`ReloadHandle::reload_async`](crate::ReloadHandle::reload_async) did not finish
    /// because its task on tokio's blocking pool was cancelled (the runtime is shutting
    /// down). The previous material stays in force.
    #[error(
        "the reload was cancelled before it finished (the tokio runtime is shutting down); \
         the previous certificates, keys and CAs stay in force"
    )]
    ReloadCancelled,

    /// The reload's task on tokio's blocking pool panicked. The previous material stays
    /// in force.
    #[error(
        "the reload panicked ({message}); the previous certificates, keys and CAs stay in \
         force. This is a bug: please report it with this message"
    )]
    ReloadPanicked {
        /// The panic message, or `"no message"` when the payload was not a string.
        message: String,
    },

    /// A server that asks for client certificates was given no policy.
    #[error(
        "no authorization policy: a server that verifies client certificates must say which \
         clients it accepts. Call `.policy(Policy::any_verified())` to accept every \
         certificate issued by the client CAs, or a narrower policy such as \
         `\"cn:service-a\".parse::<Policy>()?`"
    )]
    MissingPolicy,

    /// Several problems found by one build or reload, each with its own message; see
    /// [`problems`](Self::problems). A build with one problem returns that problem
    /// itself.
    #[error("{} problems:{}", .0.len(), numbered(.0))]
    Several(Vec<Self>),

    /// No crypto provider is available.
    #[error(
        "no rustls crypto provider: enable the `aws-lc-rs` or `ring` feature of `mtls`, or \
         install a process default with `CryptoProvider::install_default`"
    )]
    NoCryptoProvider,

    /// A policy string did not parse.
    #[error(transparent)]
    Policy(#[from] PolicyError),

    /// rustls refused the configuration (the rustls error is printed in the message, not
    /// returned by `source()`).
    #[error("rustls refused the configuration: {0}")]
    Rustls(rustls::Error),

    /// Building the rustls certificate verifier failed (the rustls error is printed in the
    /// message, not returned by `source()`).
    #[error("cannot build the certificate verifier: {0}")]
    Verifier(rustls::server::VerifierBuilderError),

    /// File watching could not be set up.
    #[cfg(feature = "watch")]
    #[error("cannot watch {}: {error}", path.display())]
    Watch {
        /// The directory that could not be watched.
        path: PathBuf,
        /// What notify reported (printed in the message, not returned by `source()`).
        error: notify::Error,
    },
}

impl Error {
    /// One error for the problems of a build: the problem itself when there is one,
    /// [`Error::Several`] otherwise (nested lists are flattened).
    pub(crate) fn from_problems(problems: Vec<Self>) -> Self {
        let mut flat: Vec<Self> = Vec::with_capacity(problems.len());
        for p in problems {
            match p {
                Self::Several(inner) => flat.extend(inner),
                other => flat.push(other),
            }
        }
        if flat.len() == 1
            && let Some(only) = flat.pop()
        {
            return only;
        }
        Self::Several(flat)
    }

    /// Every problem this error reports: the list of [`Error::Several`], or this error
    /// alone.
    pub fn problems(&self) -> Vec<&Self> {
        match self {
            Self::Several(all) => all.iter().collect(),
            other => vec![other],
        }
    }

    /// The file this error is about, when there is one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::Io { path, .. }
            | Self::Empty { path }
            | Self::NotPem { path, .. }
            | Self::BadPem { path, .. }
            | Self::NoCertificate { path, .. }
            | Self::BadCertificate { path, .. }
            | Self::NotX509V3 { path, .. }
            | Self::IsPkcs12 { path }
            | Self::RsaPssKey { path, .. }
            | Self::ExplicitEcParameters { path }
            | Self::CrlNotV2 { path, .. }
            | Self::NoPrivateKey { path, .. }
            | Self::MultipleKeys { path, .. }
            | Self::EncryptedKey { path }
            | Self::WrongPassword { path, .. }
            | Self::PasswordUnavailable { path, .. }
            | Self::UnsupportedEncryption { path, .. }
            | Self::Truncated { path, .. }
            | Self::BadPkcs12 { path, .. }
            | Self::Pkcs12NoMatchingCertificate { path }
            | Self::SniNameMismatch { path, .. }
            | Self::SignerFailed { path, .. }
            | Self::UnsupportedKey { path, .. }
            | Self::Expired { path, .. }
            | Self::NotYetValid { path, .. }
            | Self::CaCertificateAsLeaf { path, .. }
            | Self::NoSubjectAltName { path, .. }
            | Self::WrongExtendedKeyUsage { path, .. }
            | Self::UnknownIssuer { path, .. }
            | Self::ChainInvalid { path, .. }
            | Self::NotACa { path, .. }
            | Self::CaExpired { path, .. }
            | Self::BadCrl { path, .. }
            | Self::CrlIssuerUnknown { path, .. }
            | Self::CrlRollback { path, .. }
            | Self::CrlExpired { path, .. }
            | Self::CrlMissing { was: path, .. }
            | Self::Revoked { path, .. } => Some(path),
            Self::KeyMismatch { key, .. } => Some(key),
            Self::SignerKeyMismatch { cert, .. } => Some(cert),
            #[cfg(feature = "watch")]
            Self::Watch { path, .. } => Some(path),
            Self::MissingIdentity { .. }
            | Self::MissingCa { .. }
            | Self::InvalidServerName { .. }
            | Self::InvalidSniName { .. }
            | Self::Pkcs11 { .. }
            | Self::ReloadCancelled
            | Self::ReloadPanicked { .. }
            | Self::MissingPolicy
            | Self::Revocation { .. }
            | Self::NoCryptoProvider
            | Self::Policy(_)
            | Self::Rustls(_)
            | Self::Verifier(_) => None,
            Self::Several(all) => all.iter().find_map(Self::path),
        }
    }
}

/// ` 1. …`, ` 2. …`, one per line, for [`Error::Several`].
fn numbered(errors: &[Error]) -> String {
    let mut out = String::new();
    for (i, e) in errors.iter().enumerate() {
        out.push_str(&format!("\n  {}. {e}", i + 1));
    }
    out
}

/// Formats a time as RFC 3339 in UTC (`2026-01-31T12:00:00Z`).
pub(crate) fn fmt_time(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| format!("{t}"))
}

#[cfg(test)]
mod tests;
