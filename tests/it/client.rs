//! `Client` construction, the executor underneath, and token hygiene in `Debug`.

use consul_kv::Client;
use consul_kv_tests::server;

use crate::prefix;

#[tokio::test]
async fn builder_from_env_lookup_and_executor() {
    let server = server::start().await;
    let base = server.base_url();
    let client = Client::builder()
        .from_env_lookup(|name| (name == "CONSUL_HTTP_ADDR").then(|| base.clone()))
        .build()
        .unwrap();
    assert_eq!(client.address(), server.base_url());
    let key = format!("{}k", prefix("client"));
    assert!(client.kv().set(&key, "v").await.unwrap());

    // The executor runs proto operations directly, and a client can wrap one.
    let found = client
        .executor()
        .execute(&consul_kv::proto::kv::Get::new(&key))
        .await
        .unwrap();
    assert_eq!(found.value.unwrap().value_bytes(), b"v");
    let again = Client::from_executor(client.executor().clone());
    assert!(again.kv().get(&key).await.unwrap().is_some());
    let from: Client = client.executor().clone().into();
    assert!(from.kv().delete(&key).await.unwrap());
}

#[tokio::test]
async fn bad_settings_are_reported_by_build_and_tokens_never_printed() {
    let err = Client::builder()
        .address("ftp://nowhere")
        .build()
        .unwrap_err();
    assert!(matches!(err, consul_kv::Error::Config(_)), "{err:?}");
    let client = Client::builder()
        .address("http://127.0.0.1:8500")
        .token("super-secret-token")
        .build()
        .unwrap();
    for s in [
        format!("{client:?}"),
        format!("{:?}", client.kv()),
        format!("{:?}", client.session()),
        format!("{:?}", client.kv().get("k")),
        format!("{:?}", client.lock("k")),
    ] {
        assert!(!s.contains("super-secret-token"), "{s}");
    }
}
