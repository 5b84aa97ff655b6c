//! hyper adapter for mtls (in progress).
