//! `from_env` against the real process environment (its own test binary, so setting variables
//! races with nothing else), and the precedence of explicit settings.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod support;

use std::sync::Once;

use consul_kv_hyper::proto::kv::Get;
use consul_kv_hyper::HyperClient;
use support::*;

const ENV_TOKEN: &str = "env-token-0001";
const FILE_TOKEN: &str = "file-token-0002";

static INIT: Once = Once::new();

/// Sets the variables once; every test in this binary sees the same environment.
fn init_env() {
    INIT.call_once(|| {
        let dir = std::env::temp_dir().join(format!("consul-kv-hyper-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let token_file = dir.join("token");
        std::fs::write(&token_file, format!("  {FILE_TOKEN}\n")).unwrap();
        for (k, v) in [
            ("CONSUL_HTTP_ADDR", "127.0.0.1:1"),
            ("CONSUL_HTTP_TOKEN", ENV_TOKEN),
            ("CONSUL_NAMESPACE", "env-ns"),
            ("CONSUL_PARTITION", "env-part"),
            ("CONSUL_HTTP_SSL", ""),
        ] {
            std::env::set_var(k, v);
        }
        std::env::set_var("CONSUL_HTTP_TOKEN_FILE_FOR_TESTS", &token_file);
    });
}

fn token_file() -> String {
    std::env::var("CONSUL_HTTP_TOKEN_FILE_FOR_TESTS").unwrap()
}

fn token(c: &HyperClient) -> Option<&str> {
    c.context().token.as_ref().map(|t| t.expose_secret())
}

#[test]
fn the_environment_fills_what_is_not_set_explicitly() {
    init_env();
    let c = HyperClient::builder().from_env().build().unwrap();
    assert_eq!(c.address(), "http://127.0.0.1:1");
    assert_eq!(token(&c), Some(ENV_TOKEN));
    assert_eq!(c.context().namespace.as_deref(), Some("env-ns"));
    assert_eq!(c.context().partition.as_deref(), Some("env-part"));
    // An empty variable counts as unset: CONSUL_HTTP_SSL="" does not switch to https.
    assert!(c.address().starts_with("http://"));
    // Without from_env, nothing is read.
    let c = HyperClient::builder().build().unwrap();
    assert_eq!(c.address(), "http://127.0.0.1:8500");
    assert_eq!(token(&c), None);
}

#[test]
fn explicit_settings_win_before_and_after_from_env() {
    init_env();
    let before = HyperClient::builder()
        .address("10.1.1.1:8500")
        .token("explicit")
        .namespace("explicit-ns")
        .from_env()
        .build()
        .unwrap();
    let after = HyperClient::builder()
        .from_env()
        .address("10.1.1.1:8500")
        .token("explicit")
        .namespace("explicit-ns")
        .build()
        .unwrap();
    for c in [&before, &after] {
        assert_eq!(c.address(), "http://10.1.1.1:8500");
        assert_eq!(token(c), Some("explicit"));
        assert_eq!(c.context().namespace.as_deref(), Some("explicit-ns"));
        assert_eq!(c.context().partition.as_deref(), Some("env-part"));
    }
}

#[test]
fn a_token_file_wins_at_its_own_level_only() {
    init_env();
    // Explicit token file beats the environment's token.
    let c = HyperClient::builder()
        .from_env()
        .token_file(token_file())
        .build()
        .unwrap();
    assert_eq!(token(&c), Some(FILE_TOKEN), "trimmed file contents");
    // An explicit token beats an environment token file.
    let path = token_file();
    let c = HyperClient::builder()
        .token("explicit")
        .from_env_lookup(move |n| match n {
            "CONSUL_HTTP_TOKEN_FILE" => Some(path.clone()),
            other => std::env::var(other).ok(),
        })
        .build()
        .unwrap();
    assert_eq!(token(&c), Some("explicit"));
    // Within the environment, the file wins over the token, as in Consul's Go client.
    let path = token_file();
    let c = HyperClient::builder()
        .from_env_lookup(move |n| match n {
            "CONSUL_HTTP_TOKEN_FILE" => Some(path.clone()),
            other => std::env::var(other).ok(),
        })
        .build()
        .unwrap();
    assert_eq!(token(&c), Some(FILE_TOKEN));
}

#[tokio::test]
async fn the_merged_settings_reach_the_wire() {
    init_env();
    let server = Server::start(|_| async { reply(404, 3, "") }).await;
    let c = HyperClient::builder()
        .namespace("explicit-ns")
        .from_env()
        .address(server.url())
        .build()
        .unwrap();
    assert!(c.execute(&Get::new("k")).await.unwrap().value.is_none());
    let seen = server.stats.last();
    assert_eq!(seen.uri, "/v1/kv/k?ns=explicit-ns&partition=env-part");
    assert_eq!(seen.headers["x-consul-token"], ENV_TOKEN);
}
