//! What every subcommand shares: the HTTP flags, building the client from them and the
//! `CONSUL_HTTP_*` environment, the output streams, and errors worded as the `consul` CLI's Go
//! API client words them.

use std::io::Write;

use clap::{ArgAction, Args};
use consul_kv::proto::ResponseError;
use consul_kv::{Client, Consistency, Error};

/// The HTTP flags of the `consul` CLI (client and server flag sets) plus the multi-tenancy
/// flags of the kv subcommands.
#[derive(Debug, Clone, Default, Args)]
pub struct HttpArgs {
    /// The agent's address (`CONSUL_HTTP_ADDR`), e.g. `127.0.0.1:8500` or `https://host:8501`.
    #[arg(long = "http-addr", value_name = "ADDR")]
    pub http_addr: Option<String>,
    /// The ACL token (`CONSUL_HTTP_TOKEN`).
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// A file holding the ACL token (`CONSUL_HTTP_TOKEN_FILE`).
    #[arg(long = "token-file", value_name = "PATH")]
    pub token_file: Option<String>,
    /// A PEM file of CA certificates (`CONSUL_CACERT`).
    #[arg(long = "ca-file", value_name = "PATH")]
    pub ca_file: Option<String>,
    /// A directory of PEM CA certificates (`CONSUL_CAPATH`).
    #[arg(long = "ca-path", value_name = "PATH")]
    pub ca_path: Option<String>,
    /// A client certificate for mutual TLS (`CONSUL_CLIENT_CERT`).
    #[arg(long = "client-cert", value_name = "PATH")]
    pub client_cert: Option<String>,
    /// The client certificate's key (`CONSUL_CLIENT_KEY`).
    #[arg(long = "client-key", value_name = "PATH")]
    pub client_key: Option<String>,
    /// The name to verify the server certificate against (`CONSUL_TLS_SERVER_NAME`).
    #[arg(long = "tls-server-name", value_name = "NAME")]
    pub tls_server_name: Option<String>,
    /// The datacenter to query (default: the agent's).
    #[arg(long, value_name = "DC")]
    pub datacenter: Option<String>,
    /// Let any server answer reads, not only the leader.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value_t = false, value_name = "BOOL")]
    pub stale: bool,
    /// The namespace (Consul Enterprise; `CONSUL_NAMESPACE`).
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// The admin partition (Consul Enterprise; `CONSUL_PARTITION`).
    #[arg(long, value_name = "PARTITION")]
    pub partition: Option<String>,
}

impl HttpArgs {
    /// A flag's value, else the environment variable's (as Go's client reads them).
    fn flag_or_env(flag: &Option<String>, var: &str) -> Option<String> {
        flag.clone().or_else(|| env_nonempty(var))
    }

    /// The checks Go's client makes while it is created, in its order and words: the client
    /// certificate and key, the CA file or directory, then the token file. Go makes them even
    /// for a plain `http://` address.
    ///
    /// # Errors
    /// The text consul prints after `Error connecting to Consul agent: `.
    pub fn go_preflight(&self) -> Result<(), String> {
        let cert = Self::flag_or_env(&self.client_cert, "CONSUL_CLIENT_CERT");
        let key = Self::flag_or_env(&self.client_key, "CONSUL_CLIENT_KEY");
        match (&cert, &key) {
            (Some(c), Some(k)) => {
                let c = read_file(c)?;
                if !contains_pem(&c, "CERTIFICATE") {
                    return Err("tls: failed to find any PEM data in certificate input".into());
                }
                let k = read_file(k)?;
                if !contains_pem(&k, "PRIVATE KEY") && contains_pem(&k, "CERTIFICATE") {
                    return Err(
                        "tls: found a certificate rather than a key in the PEM for the private key"
                            .into(),
                    );
                }
                if !contains_pem(&k, "PRIVATE KEY") {
                    return Err("tls: failed to find any PEM data in key input".into());
                }
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err("both client cert and client key must be provided".into());
            }
            (None, None) => {}
        }
        if let Some(f) = Self::flag_or_env(&self.ca_file, "CONSUL_CACERT") {
            let pem = read_file(&f).map_err(|e| format!("Error loading CA File: {e}"))?;
            if !contains_pem(&pem, "CERTIFICATE") {
                return Err(format!("Error loading CA File: Couldn't parse PEM in: {f}"));
            }
        } else if let Some(d) = Self::flag_or_env(&self.ca_path, "CONSUL_CAPATH") {
            check_ca_dir(std::path::Path::new(&d))?;
        }
        if let Some(t) = Self::flag_or_env(&self.token_file, "CONSUL_HTTP_TOKEN_FILE") {
            read_file(&t).map_err(|e| format!("Error loading token file: {e}"))?;
        }
        Ok(())
    }

    /// [`go_preflight`](Self::go_preflight), then [`client`](Self::client).
    ///
    /// # Errors
    /// The text consul prints after `Error connecting to Consul agent: `.
    pub fn connect(&self) -> Result<Client, String> {
        self.go_preflight()?;
        self.client().map_err(|e| full_chain(&e))
    }

    /// Builds the client: the environment first, the flags on top (flags win, as in Go).
    ///
    /// # Errors
    /// A configuration error (bad address, unreadable token or TLS file).
    pub fn client(&self) -> Result<Client, Error> {
        let mut b = Client::builder().from_env();
        // Go's client upgrades an `http://` address to HTTPS when CONSUL_HTTP_SSL is true.
        let ssl = env_nonempty("CONSUL_HTTP_SSL")
            .and_then(|v| crate::argv::parse_go_bool(&v))
            .unwrap_or(false);
        let addr = Self::flag_or_env(&self.http_addr, "CONSUL_HTTP_ADDR");
        if let Some(a) = addr {
            match a.strip_prefix("http://") {
                Some(rest) if ssl => b = b.address(format!("https://{rest}")),
                _ => b = b.address(a),
            }
        }
        if let Some(t) = &self.token {
            b = b.token(t.clone());
        }
        if let Some(t) = &self.token_file {
            b = b.token_file(t.clone());
        }
        if let Some(p) = &self.ca_file {
            b = b.tls_ca_file(p.clone());
        }
        if let Some(p) = &self.ca_path {
            b = b.tls_ca_path(p.clone());
        }
        match (&self.client_cert, &self.client_key) {
            (Some(c), Some(k)) => b = b.tls_client_cert(c.clone(), k.clone()),
            (Some(c), None) => {
                let key = std::env::var("CONSUL_CLIENT_KEY").unwrap_or_default();
                b = b.tls_client_cert(c.clone(), key);
            }
            (None, Some(k)) => {
                let cert = std::env::var("CONSUL_CLIENT_CERT").unwrap_or_default();
                b = b.tls_client_cert(cert, k.clone());
            }
            (None, None) => {}
        }
        if let Some(n) = &self.tls_server_name {
            b = b.tls_server_name(n.clone());
        }
        if let Some(dc) = &self.datacenter {
            b = b.datacenter(dc.clone());
        }
        if let Some(ns) = &self.namespace {
            b = b.namespace(ns.clone());
        }
        if let Some(p) = &self.partition {
            b = b.partition(p.clone());
        }
        b.build()
    }

    /// The consistency for reads: stale with `-stale`, Consul's default otherwise.
    pub fn consistency(&self) -> Consistency {
        if self.stale {
            Consistency::Stale
        } else {
            Consistency::Default
        }
    }

    /// The `http://host:port` Go's client would print in an error.
    fn base_url(&self) -> String {
        let addr = self
            .http_addr
            .clone()
            .or_else(|| {
                std::env::var("CONSUL_HTTP_ADDR")
                    .ok()
                    .filter(|s| !s.is_empty())
            })
            .unwrap_or_else(|| "127.0.0.1:8500".to_owned());
        if addr.contains("://") {
            addr.trim_end_matches('/').to_owned()
        } else {
            let ssl = std::env::var("CONSUL_HTTP_SSL")
                .ok()
                .and_then(|v| crate::argv::parse_go_bool(&v))
                .unwrap_or(false);
            format!("{}://{addr}", if ssl { "https" } else { "http" })
        }
    }

    /// The query parameters Go's client adds to every request (`dc`, `stale`, `ns`,
    /// `partition`), merged with `extra`.
    fn params(&self, read: bool, extra: &[(&str, String)]) -> Vec<(String, String)> {
        let mut p: Vec<(String, String)> = extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        if let Some(dc) = &self.datacenter {
            p.push(("dc".into(), dc.clone()));
        }
        if read && self.stale {
            p.push(("stale".into(), String::new()));
        }
        if let Some(ns) = self
            .namespace
            .clone()
            .or_else(|| env_nonempty("CONSUL_NAMESPACE"))
        {
            p.push(("ns".into(), ns));
        }
        if let Some(pt) = self
            .partition
            .clone()
            .or_else(|| env_nonempty("CONSUL_PARTITION"))
        {
            p.push(("partition".into(), pt));
        }
        p.sort();
        p
    }

    /// The URL Go's client would request, as its errors print it.
    pub fn go_url(&self, key: &str, read: bool, extra: &[(&str, String)]) -> String {
        let mut url = format!(
            "{}/v1/kv/{}",
            self.base_url(),
            consul_kv::proto::encode_key(key)
        );
        let params = self.params(read, extra);
        if !params.is_empty() {
            url.push('?');
            let q: Vec<String> = params
                .iter()
                .map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v)))
                .collect();
            url.push_str(&q.join("&"));
        }
        url
    }
}

/// Whether `data` holds a PEM block whose label ends with `label`.
fn contains_pem(data: &[u8], label: &str) -> bool {
    let text = String::from_utf8_lossy(data);
    text.lines().any(|l| {
        l.trim()
            .strip_prefix("-----BEGIN ")
            .and_then(|r| r.strip_suffix("-----"))
            .is_some_and(|l| l.ends_with(label))
    })
}

/// Go's walk of a CA directory: every file must hold a certificate.
fn check_ca_dir(path: &std::path::Path) -> Result<(), String> {
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| format!("lstat {}: {}", path.display(), io_text(&e)))?;
    if !meta.is_dir() {
        let pem =
            std::fs::read(path).map_err(|e| go_read_error(&path.display().to_string(), &e))?;
        if !contains_pem(&pem, "CERTIFICATE") {
            return Err(format!(
                "Error loading CA Path: Couldn't parse PEM in: {}",
                path.display()
            ));
        }
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(path)
        .map_err(|e| format!("open {}: {}", path.display(), io_text(&e)))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        check_ca_dir(&p)?;
    }
    Ok(())
}

fn io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => e.to_string(),
    }
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|s| !s.is_empty())
}

/// Go's `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The request an error happened in, for Go-worded transport errors.
#[derive(Debug, Clone, Copy)]
pub struct Req<'a> {
    /// `Get`, `Put` or `Delete`, as Go's `net/http` prints the method.
    pub method: &'static str,
    /// The key or prefix.
    pub key: &'a str,
    /// Whether it is a read (reads carry `stale`).
    pub read: bool,
}

/// The error text Go's API client would produce for `e`.
pub fn go_error(http: &HttpArgs, req: Req<'_>, extra: &[(&str, String)], e: &Error) -> String {
    if let Some(r) = e.as_response() {
        if let Some(msg) = server_message(r) {
            let code = r.status().map(|s| s.as_u16()).unwrap_or(500);
            return format!("Unexpected response code: {code} ({msg})");
        }
    }
    if is_connection_refused(e) {
        let url = http.go_url(req.key, req.read, extra);
        let host = url
            .split_once("://")
            .map(|(_, r)| r.split('/').next().unwrap_or(r))
            .unwrap_or_default();
        return format!(
            "{} \"{url}\": dial tcp {host}: connect: connection refused",
            req.method
        );
    }
    full_chain(e)
}

fn server_message(r: &ResponseError) -> Option<String> {
    let m = match r {
        ResponseError::Status { message, .. }
        | ResponseError::PermissionDenied { message }
        | ResponseError::TooLarge { message }
        | ResponseError::RateLimited { message, .. }
        | ResponseError::NoLeader { message }
        | ResponseError::ServerUnavailable { message }
        | ResponseError::UnknownDatacenter { message }
        | ResponseError::InvalidSession { message } => message,
        _ => return None,
    };
    Some(m.as_str().to_owned())
}

fn is_connection_refused(e: &Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

/// An error and its sources, `a: b: c`, the way Go wraps errors.
pub fn full_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(err) = cur {
        let t = err.to_string();
        if !t.is_empty() && !s.ends_with(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = err.source();
    }
    s
}

/// Buffered stdout and stderr; `info` and `error` add the newline as Go's `cli.BasicUi`
/// does.
#[derive(Debug, Default)]
pub struct Ui {
    /// What goes to stdout.
    pub out: Vec<u8>,
}

impl Ui {
    /// A line on stdout (buffered; written by [`Ui::flush`]).
    pub fn info(&mut self, line: impl AsRef<[u8]>) {
        self.out.extend_from_slice(line.as_ref());
        self.out.push(b'\n');
        if self.out.len() > 1 << 20 {
            self.flush();
        }
    }

    /// A line on stderr, after everything on stdout so far.
    pub fn error(&mut self, line: impl AsRef<[u8]>) {
        self.flush();
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(line.as_ref());
        let _ = err.write_all(b"\n");
        let _ = err.flush();
    }

    /// Writes out what is buffered for stdout.
    pub fn flush(&mut self) {
        if !self.out.is_empty() {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&self.out);
            let _ = out.flush();
            self.out.clear();
        }
    }
}

impl Drop for Ui {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Go's `os.PathError` text for a failed read of `path`.
pub fn go_read_error(path: &str, e: &std::io::Error) -> String {
    let what = match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        std::io::ErrorKind::IsADirectory => return format!("read {path}: is a directory"),
        _ => e.to_string(),
    };
    format!("open {path}: {what}")
}

/// Reads a file whole, as Go's `os.ReadFile` (a directory is an error).
pub fn read_file(path: &str) -> Result<Vec<u8>, String> {
    if std::path::Path::new(path).is_dir() {
        return Err(format!("read {path}: is a directory"));
    }
    std::fs::read(path).map_err(|e| go_read_error(path, &e))
}

/// Reads stdin whole.
pub fn read_stdin() -> Result<Vec<u8>, String> {
    let mut b = Vec::new();
    std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut b).map_err(|e| e.to_string())?;
    Ok(b)
}
