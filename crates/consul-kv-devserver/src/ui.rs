//! The KV browser at `/ui/`: three static files compiled into the binary, served with a strict
//! content security policy. The page is a client of the ordinary HTTP API (`/v1/kv`,
//! `/v1/session/list`, `/v1/catalog/datacenters`); it has no endpoint of its own.

use bytes::Bytes;
use http::{Method, StatusCode};

use crate::reply::{empty, set_header, text, Body, Resp};

const INDEX_HTML: &str = include_str!("../ui/index.html");
const APP_JS: &str = include_str!("../ui/app.js");
const APP_CSS: &str = include_str!("../ui/app.css");

/// Scripts and styles only from this origin, requests only to this origin, no plugins, no
/// framing: a key or value that slipped past the page's escaping still could not run code.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

/// Whether `path` (decoded and clean) belongs to the UI: `/ui` or anything under `/ui/`.
pub(crate) fn is_ui_path(path: &str) -> bool {
    path == "/ui" || path.starts_with("/ui/")
}

/// Serves a UI path. `/ui` redirects to `/ui/`; `/ui/app.js` and `/ui/app.css` are the
/// assets; every other path under `/ui/` is the page (its own router reads the `#` fragment).
pub(crate) fn serve(path: &str, method: &Method) -> Resp {
    if method != Method::GET && method != Method::HEAD {
        let mut r = text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method {method} not allowed"),
        );
        set_header(&mut r, "allow", "GET,HEAD");
        return r;
    }
    if path == "/ui" {
        return redirect_to_ui(method);
    }
    let (body, content_type) = match path {
        "/ui/app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "/ui/app.css" => (APP_CSS, "text/css; charset=utf-8"),
        _ => (INDEX_HTML, "text/html; charset=utf-8"),
    };
    let mut r = http::Response::new(Body::from(if method == Method::HEAD {
        Bytes::new()
    } else {
        Bytes::from_static(body.as_bytes())
    }));
    set_header(&mut r, "content-type", content_type);
    set_header(&mut r, "content-security-policy", CSP);
    set_header(&mut r, "x-content-type-options", "nosniff");
    set_header(&mut r, "referrer-policy", "no-referrer");
    set_header(&mut r, "cache-control", "no-cache");
    r
}

/// `/` and `/ui` with the UI on: a 301 to `/ui/`, as a Consul agent with its UI enabled
/// answers (Go's `http.Redirect`: a short HTML body for GET and HEAD).
pub(crate) fn redirect_to_ui(method: &Method) -> Resp {
    let mut r = if method == Method::GET {
        let mut r = http::Response::new(Body::from(Bytes::from_static(
            b"<a href=\"/ui/\">Moved Permanently</a>.\n\n",
        )));
        *r.status_mut() = StatusCode::MOVED_PERMANENTLY;
        r
    } else {
        empty(StatusCode::MOVED_PERMANENTLY)
    };
    if method == Method::GET || method == Method::HEAD {
        set_header(&mut r, "content-type", "text/html; charset=utf-8");
    }
    set_header(&mut r, "location", "/ui/");
    r
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_headers() {
        assert!(is_ui_path("/ui"));
        assert!(is_ui_path("/ui/"));
        assert!(is_ui_path("/ui/dc1/kv/a"));
        assert!(!is_ui_path("/uix"));
        assert!(!is_ui_path("/v1/kv/ui"));

        let r = serve("/ui", &Method::GET);
        assert_eq!(r.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(r.headers()["location"], "/ui/");

        let r = serve("/ui/", &Method::GET);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
        assert!(r.headers()["content-security-policy"]
            .to_str()
            .is_ok_and(|v| v.contains("script-src 'self'")));

        let r = serve("/ui/app.js", &Method::GET);
        assert_eq!(
            r.headers()["content-type"],
            "text/javascript; charset=utf-8"
        );

        let r = serve("/ui/", &Method::PUT);
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    }

    #[test]
    fn page_has_no_inline_script_and_no_outside_address() {
        // The CSP forbids inline scripts; the page must not need any, nor load anything from
        // another host (it must work with no internet).
        assert!(!INDEX_HTML.contains("<script>"));
        for asset in [INDEX_HTML, APP_JS, APP_CSS] {
            assert!(
                !asset.contains("http://"),
                "absolute http URL in a UI asset"
            );
            assert!(
                !asset.contains("https://"),
                "absolute https URL in a UI asset"
            );
        }
        // Data goes into the page as text, never as markup.
        assert!(!APP_JS.contains("innerHTML"));
        assert!(!APP_JS.contains("outerHTML"));
        assert!(!APP_JS.contains("insertAdjacentHTML"));
        assert!(!APP_JS.contains("document.write"));
    }
}
