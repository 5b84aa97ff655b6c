//! `mtls inspect`.
use crate::Result;

/// `mtls inspect FILE…`.
#[derive(Debug, clap::Args)]
pub(crate) struct InspectArgs {
    /// Files to describe.
    #[arg(required = true)]
    pub(crate) files: Vec<std::path::PathBuf>,
}

pub(crate) fn run(_args: &InspectArgs) -> Result<()> {
    Ok(())
}
