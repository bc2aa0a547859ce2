//! Conformance suite (placeholder until issue 3 lands).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
