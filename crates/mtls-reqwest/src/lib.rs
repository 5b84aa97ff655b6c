//! reqwest adapter for mtls (in progress).
