//! Facade integration tests (placeholder until issue 4 lands).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
