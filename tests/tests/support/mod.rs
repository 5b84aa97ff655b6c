//! Shared helpers of the interop tests (`interop_*.rs`): the openssl-made "guide" PKI,
//! running third-party programs with bounded time, our own servers, and the checks of
//! an accepted or refused connection.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

pub mod check;
pub mod ours;
pub mod pki;
pub mod proc;
