//! axum adapter for mtls (in progress).
