//! The runnable examples of the `mtls` crates live beside this file (`cargo run --example
//! quickstart`). This library only compiles the code blocks of the workspace README, so the
//! README's examples cannot drift from the API.

#![doc = include_str!("../../README.md")]
