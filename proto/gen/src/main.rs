//! Writes `crates/mtls-tonic/tests/generated/mtls.examples.v1.rs` from
//! `proto/whoami.proto` (with `--check`: fails when the committed file differs).

use std::path::Path;
use std::process::ExitCode;

const OUT: &str = "crates/mtls-tonic/tests/generated";
const FILE: &str = "mtls.examples.v1.rs";

fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let check = std::env::args().any(|a| a == "--check");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let proto_dir = root.join("proto");
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let tmp = tempfile::tempdir()?;
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    tonic_prost_build::configure()
        .out_dir(tmp.path())
        .compile_with_config(config, &[proto_dir.join("whoami.proto")], &[proto_dir])?;
    let fresh = std::fs::read_to_string(tmp.path().join(FILE))?;
    let committed = root.join(OUT).join(FILE);
    if check {
        let old = std::fs::read_to_string(&committed).unwrap_or_default();
        if old != fresh {
            eprintln!(
                "{} is stale: run `cargo run --manifest-path proto/gen/Cargo.toml`",
                committed.display()
            );
            return Ok(ExitCode::FAILURE);
        }
        return Ok(ExitCode::SUCCESS);
    }
    std::fs::create_dir_all(root.join(OUT))?;
    std::fs::write(&committed, fresh)?;
    println!("wrote {}", committed.display());
    Ok(ExitCode::SUCCESS)
}
