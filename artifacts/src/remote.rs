//! What the remote sources share: request failures as the cache acts on them (with every URL left
//! out: they carry keys, tokens or signatures), and the rule for where a download may go.

use sightline_core::CoreError;

/// The error text of a request failure and its causes.
pub(crate) fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// A failed request: a timeout, or an unreachable source; both transient, so retried.
pub(crate) fn request_error(what: &str, e: reqwest::Error) -> CoreError {
    let e = e.without_url();
    let message = format!("{what}: {}", describe(&e));
    if e.is_timeout() {
        CoreError::SourceTimeout(message)
    } else {
        CoreError::SourceUnavailable(message)
    }
}

/// Plain http to a loopback host: the test servers, and nothing else that may be fetched
/// without TLS.
pub(crate) fn is_loopback_http(url: &reqwest::Url) -> bool {
    let loopback = match url.host_str() {
        Some("localhost") => true,
        Some(host) => host.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()),
        None => false,
    };
    url.scheme() == "http" && loopback
}

/// Where a download or a redirect may go: https, or loopback http when the source itself was
/// given as loopback http.
pub(crate) fn fetchable(url: &reqwest::Url, loopback_http: bool) -> bool {
    url.scheme() == "https" || (loopback_http && is_loopback_http(url))
}
