//! The runnable examples of the `mtls` crates live beside this file (`cargo run --example
//! quickstart`). This library only compiles the code blocks of the workspace README, so the
//! README's examples cannot drift from the API.

#![doc = include_str!("../../README.md")]

pub mod server_args {
    //! The command line the server examples share (`axum_server`, `grpc_server`): the same
    //! flags, the same checks and messages.

    use std::path::PathBuf;

    use mtls::Policy;

    /// The parsed command line of a server example.
    #[derive(Debug)]
    pub struct ServerArgs {
        pub listen: String,
        pub cert: PathBuf,
        pub key: PathBuf,
        pub client_cas: Vec<PathBuf>,
        pub crls: Vec<PathBuf>,
        pub policy: Policy,
        pub optional_client_auth: bool,
        pub admin_cn: String,
        pub watch: bool,
    }

    #[derive(Debug)]
    pub enum Parsed {
        /// Run with these arguments.
        Run(Box<ServerArgs>),
        /// `-h` / `--help`.
        Help,
    }

    /// Parses a server example's flags; `listen_example` is the address shown when
    /// `--listen` lacks a value.
    pub fn parse_server_args(
        args: impl IntoIterator<Item = String>,
        listen_example: &str,
    ) -> Result<Parsed, String> {
        let mut listen = None;
        let mut cert = None;
        let mut key = None;
        let mut client_cas = Vec::new();
        let mut crls = Vec::new();
        let mut allow = Vec::new();
        let mut allow_any = false;
        let mut optional_client_auth = false;
        let mut admin_cn = None;
        let mut watch = false;

        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            // Accept both `--flag value` and `--flag=value`.
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
                _ => (arg.clone(), None),
            };
            let mut value = |what: &str| -> Result<String, String> {
                match inline.clone().or_else(|| args.next()) {
                    Some(v) if !v.is_empty() => Ok(v),
                    _ => Err(format!("{flag} needs a value ({what})")),
                }
            };
            match flag.as_str() {
                "-h" | "--help" => return Ok(Parsed::Help),
                "--listen" => {
                    listen = Some(value(&format!("an address such as {listen_example}"))?)
                }
                "--cert" => cert = Some(PathBuf::from(value("a PEM file")?)),
                "--key" => key = Some(PathBuf::from(value("a PEM file")?)),
                "--client-ca" => client_cas.push(PathBuf::from(value("a PEM file")?)),
                "--crl" => crls.push(PathBuf::from(value("a PEM or DER file")?)),
                "--allow" => allow.push(value("a policy such as cn:alice")?),
                "--admin-cn" => admin_cn = Some(value("a common name")?),
                "--allow-any" | "--optional-client-auth" | "--watch" if inline.is_some() => {
                    return Err(format!("{flag} takes no value"));
                }
                "--allow-any" => allow_any = true,
                "--optional-client-auth" => optional_client_auth = true,
                "--watch" => watch = true,
                other if other.starts_with('-') => return Err(format!("unknown flag `{other}`")),
                other => return Err(format!("unexpected argument `{other}`")),
            }
        }

        let listen = listen.ok_or("--listen ADDR is required")?;
        let cert = cert.ok_or("--cert FILE is required (the server's certificate)")?;
        let key = key.ok_or("--key FILE is required (the server's private key)")?;
        if client_cas.is_empty() {
            return Err(
                "--client-ca FILE is required (the CA that issues client certificates)".into(),
            );
        }
        let policy = match (allow.is_empty(), allow_any) {
            (true, false) => {
                return Err(
                    "say which clients may connect: --allow SPEC (e.g. --allow cn:alice, \
                            repeatable) or --allow-any for every client with a certificate from \
                            a --client-ca; there is no default, so that admitting everyone is a \
                            deliberate choice"
                        .into(),
                );
            }
            (false, true) => {
                return Err(
                    "--allow and --allow-any exclude each other: --allow-any already \
                            admits every client certificate from a --client-ca"
                        .into(),
                );
            }
            (true, true) => Policy::any_verified(),
            (false, false) => {
                Policy::parse_any(&allow).map_err(|e| format!("bad --allow value: {e}"))?
            }
        };
        let admin_cn = admin_cn.unwrap_or_else(|| "admin".to_owned());
        Ok(Parsed::Run(Box::new(ServerArgs {
            listen,
            cert,
            key,
            client_cas,
            crls,
            policy,
            optional_client_auth,
            admin_cn,
            watch,
        })))
    }
}
