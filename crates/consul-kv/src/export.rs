//! [`Kv::export`]: a prefix in the `consul kv export` format.

use std::future::IntoFuture;

use consul_kv_proto::export::ExportEntry;
use consul_kv_proto::Consistency;

use crate::kv::Kv;
use crate::scope::BoxFuture;
use crate::Result;

impl Kv {
    /// Every entry under a byte prefix as `consul kv export` writes it: key, flags, value, in
    /// key order (`""` exports the whole store). A key stored without a value exports with an
    /// empty value, as in the CLI.
    ///
    /// [`ExportEntry`] serialises with serde exactly as the CLI's entries (base64 values), so
    /// `serde_json` writes a file `consul kv import` reads;
    /// [`to_cli_json`](crate::proto::export::to_cli_json) writes the very bytes the CLI
    /// prints. [`Kv::import`] writes such entries back.
    ///
    /// ```no_run
    /// # async fn demo(kv: consul_kv::Kv) -> Result<(), Box<dyn std::error::Error>> {
    /// let entries = kv.export("app/").await?;
    /// std::fs::write("app.json", serde_json::to_vec_pretty(&entries)?)?;
    /// // or, byte for byte what `consul kv export app/` prints:
    /// std::fs::write("app.json", consul_kv::proto::export::to_cli_json(&entries))?;
    /// # Ok(()) }
    /// ```
    pub fn export(&self, prefix: impl Into<String>) -> ExportRequest {
        ExportRequest {
            kv: self.clone(),
            prefix: prefix.into(),
            consistency: Consistency::Default,
        }
    }
}

/// A [`Kv::export`] request. Resolves to `Vec<ExportEntry>`.
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug, Clone)]
pub struct ExportRequest {
    kv: Kv,
    prefix: String,
    consistency: Consistency,
}

impl ExportRequest {
    /// The consistency of the read (the CLI's `-stale` is [`Consistency::Stale`]).
    pub fn consistency(mut self, consistency: Consistency) -> Self {
        self.consistency = consistency;
        self
    }

    /// Sends the request.
    ///
    /// # Errors
    /// As [`Kv::items`].
    pub async fn send(self) -> Result<Vec<ExportEntry>> {
        let items = self
            .kv
            .items(self.prefix)
            .consistency(self.consistency)
            .await?;
        Ok(items.into_iter().map(ExportEntry::from).collect())
    }
}

impl IntoFuture for ExportRequest {
    type Output = Result<Vec<ExportEntry>>;
    type IntoFuture = BoxFuture<'static, Self::Output>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}
