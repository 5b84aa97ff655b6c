//! Helpers that put lists and per-role texts into [`Error`](super::Error)'s messages.

use super::Role;

pub(super) fn missing_ca(role: Role) -> &'static str {
    match role {
        Role::Server => {
            "no client CA: call `.client_ca(path)` with the CA that issued the client \
             certificates"
        }
        Role::Client => {
            "no CA to verify servers with: call `.ca(path)` with the CA that issued the \
             server certificate"
        }
    }
}

pub(super) fn present_eku(present: &[String]) -> String {
    if present.is_empty() {
        "nothing".to_owned()
    } else {
        present.join(", ")
    }
}

pub(super) fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
