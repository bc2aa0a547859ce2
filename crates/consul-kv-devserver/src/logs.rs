//! What the devserver's log lines may show of a request: its URI with any `token=` query
//! parameter redacted (Consul's own debug log once leaked tokens this way).

use std::borrow::Cow;

/// The request URI with the value of every `token` query parameter replaced by `***`.
pub(crate) fn redacted_uri(uri: &http::Uri) -> Cow<'_, str> {
    let Some(pq) = uri.path_and_query() else {
        return Cow::Borrowed("/");
    };
    let Some(query) = pq.query() else {
        return Cow::Borrowed(pq.as_str());
    };
    if !query.split('&').any(|p| {
        p.split('=')
            .next()
            .is_some_and(|k| k.eq_ignore_ascii_case("token"))
    }) {
        return Cow::Borrowed(pq.as_str());
    }
    let redacted: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("token") => format!("{k}=***"),
            None if p.eq_ignore_ascii_case("token") => p.to_owned(),
            _ => p.to_owned(),
        })
        .collect();
    Cow::Owned(format!("{}?{}", pq.path(), redacted.join("&")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_redacted_and_the_rest_kept() {
        let u: http::Uri = "/v1/kv/a?dc=dc1&token=s3cr3t&TOKEN=x2&recurse"
            .parse()
            .unwrap();
        let r = redacted_uri(&u);
        assert_eq!(r, "/v1/kv/a?dc=dc1&token=***&TOKEN=***&recurse");
        let u: http::Uri = "/v1/kv/tokens?keys".parse().unwrap();
        assert_eq!(redacted_uri(&u), "/v1/kv/tokens?keys");
    }
}
