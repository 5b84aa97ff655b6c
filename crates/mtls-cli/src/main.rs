//! `mtls`: make a small PKI for mutual TLS, inspect certificate files, and diagnose a
//! failing mTLS setup, in the words of the `mtls` library's errors.
//!
//! Exit codes: 0 success, 1 a failure (an error, a problem found by `doctor`), 2 bad
//! arguments (with a usage line).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod doctor;
mod inspect;
mod p12;
mod pki;

/// What a command failed with.
#[derive(Debug)]
pub(crate) enum CliError {
    /// A failure: exit 1.
    Failed(String),
    /// Bad arguments that clap could not see: exit 2 with a usage line.
    Usage(String),
    /// Already reported on stdout (a `doctor` finding): exit 1 without more text.
    Reported,
}

impl CliError {
    pub(crate) fn msg(message: String) -> Self {
        Self::Failed(message)
    }

    pub(crate) fn usage(message: String) -> Self {
        Self::Usage(message)
    }
}

pub(crate) type Result<T> = std::result::Result<T, CliError>;

/// Make a PKI for mutual TLS, inspect certificate files, diagnose a failing mTLS setup.
#[derive(Debug, Parser)]
#[command(name = "mtls", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A small file-based PKI: CA, server and client certificates, revocation, CRLs.
    #[command(subcommand)]
    Pki(PkiCommand),
    /// Describe certificates, keys, bundles, CRLs, CSRs and PKCS#12 files.
    Inspect(inspect::InspectArgs),
    /// Check a configuration (preflight), or connect to an mTLS server and explain what happened.
    Doctor(doctor::DoctorArgs),
}

#[derive(Debug, Subcommand)]
enum PkiCommand {
    /// Create a root CA (and optionally an intermediate) in DIR.
    Init(pki::InitArgs),
    /// Issue a server or client certificate.
    Issue(pki::IssueArgs),
    /// Mark an issued certificate as revoked (publish it with `mtls pki crl`).
    Revoke(pki::RevokeArgs),
    /// Write DIR/crl.pem with every revocation.
    Crl(pki::CrlArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = e.exit_code();
            let text = e.render().to_string();
            if code == 0 {
                print!("{text}");
                return ExitCode::SUCCESS;
            }
            eprint!("{text}");
            if !text.contains("Usage:") {
                use clap::CommandFactory;
                eprintln!("\n{}", Cli::command().render_usage());
            }
            return ExitCode::from(2);
        }
    };
    let result = match &cli.command {
        Command::Pki(PkiCommand::Init(args)) => pki::init(args),
        Command::Pki(PkiCommand::Issue(args)) => pki::issue(args),
        Command::Pki(PkiCommand::Revoke(args)) => pki::revoke(args),
        Command::Pki(PkiCommand::Crl(args)) => pki::crl(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Doctor(args) => doctor::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Failed(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
        Err(CliError::Usage(message)) => {
            eprintln!("error: {message}\n\nUsage: mtls <COMMAND>; see mtls --help");
            ExitCode::from(2)
        }
        Err(CliError::Reported) => ExitCode::from(1),
    }
}
