//! `mtls doctor`.
use crate::Result;

/// `mtls doctor`.
#[derive(Debug, clap::Args)]
pub(crate) struct DoctorArgs {
    /// A server to connect to.
    pub(crate) url: Option<String>,
}

pub(crate) fn run(_args: &DoctorArgs) -> Result<()> {
    Ok(())
}
