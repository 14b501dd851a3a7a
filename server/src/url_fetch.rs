//! `url` image inputs: fetched with a timeout and a size cap, and only from public addresses
//! unless configured otherwise. The address check runs on what DNS actually returned (inside the
//! client's resolver, so the checked address is the one connected to: no DNS-rebinding gap), on IP
//! literals, and again on every redirect, which is followed by hand.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;
use sightline_core::CoreError;

const MAX_REDIRECTS: usize = 5;

#[derive(Debug, Clone)]
pub struct UrlPolicy {
    /// `ALLOW_URL_INPUT`.
    pub enabled: bool,
    /// `ALLOW_PRIVATE_URLS`: every destination is allowed.
    pub allow_private: bool,
    /// `ALLOWED_URL_NETWORKS`: networks allowed although not public.
    pub allowed_networks: Vec<IpNet>,
    pub max_bytes: usize,
    pub timeout: Duration,
}

impl UrlPolicy {
    fn permits(&self, ip: IpAddr) -> bool {
        self.allow_private || is_public(ip) || self.allowed_networks.iter().any(|net| net.contains(&ip))
    }
}

/// Public unicast addresses only: not loopback, private, shared (CGNAT), link-local (cloud
/// metadata at 169.254.169.254), multicast, unspecified, broadcast, reserved or benchmarking
/// ranges, nor IPv6 forms that embed such an IPv4 address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            let nat64 = s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0];
            if nat64 {
                let embedded = std::net::Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
                return is_public(IpAddr::V4(embedded));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] & 0xffc0) == 0xfec0
                || s[0..6] == [0, 0, 0, 0, 0, 0])
        }
    }
}

/// The resolver error that marks a refused destination, found again in reqwest's error chain.
#[derive(Debug)]
struct Forbidden;

impl std::fmt::Display for Forbidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("destination not allowed")
    }
}

impl std::error::Error for Forbidden {}

/// DNS that answers only permitted addresses, and fails when none is.
struct CheckedResolver {
    policy: Arc<UrlPolicy>,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let permitted: Vec<SocketAddr> = found.into_iter().filter(|a| policy.permits(a.ip())).collect();
            if permitted.is_empty() {
                return Err(Box::new(Forbidden) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(permitted.into_iter()) as Addrs)
        })
    }
}

fn bad(detail: &str) -> CoreError {
    CoreError::BadImage(detail.to_owned())
}

fn not_allowed() -> CoreError {
    bad("URL points to a network destination that is not allowed.")
}

pub struct UrlFetcher {
    client: reqwest::Client,
    policy: Arc<UrlPolicy>,
}

impl UrlFetcher {
    pub fn new(policy: UrlPolicy) -> Result<Self, reqwest::Error> {
        let policy = Arc::new(policy);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(CheckedResolver { policy: policy.clone() }))
            .connect_timeout(policy.timeout)
            .timeout(policy.timeout)
            .no_proxy()
            .build()?;
        Ok(UrlFetcher { client, policy })
    }

    /// Scheme and IP-literal checks; names are checked by the resolver when connecting.
    fn check(&self, url: &Url) -> Result<(), CoreError> {
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(bad("Provided image URL is invalid"));
        }
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        match literal {
            Some(ip) if !self.policy.permits(ip) => Err(not_allowed()),
            _ => Ok(()),
        }
    }

    pub async fn fetch(&self, raw: &str) -> Result<Vec<u8>, CoreError> {
        if !self.policy.enabled {
            return Err(bad("URL image inputs are disabled on this server (ALLOW_URL_INPUT)."));
        }
        let mut url = Url::parse(raw.trim()).map_err(|_| bad("Provided image URL is invalid"))?;
        for _ in 0..=MAX_REDIRECTS {
            self.check(&url)?;
            let response = self.client.get(url.clone()).send().await.map_err(request_error)?;
            if response.status().is_redirection() {
                let location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .ok_or_else(|| bad("Image URL redirected without a location."))?;
                url = url.join(location).map_err(|_| bad("Provided image URL is invalid"))?;
                continue;
            }
            if !response.status().is_success() {
                return Err(CoreError::BadImage(format!("Image URL answered HTTP {}.", response.status().as_u16())));
            }
            return self.read_capped(response).await;
        }
        Err(bad("Image URL redirected too many times."))
    }

    async fn read_capped(&self, mut response: reqwest::Response) -> Result<Vec<u8>, CoreError> {
        let too_large = || CoreError::BadImage(format!("Image at URL is larger than {} bytes.", self.policy.max_bytes));
        if response.content_length().is_some_and(|len| len > self.policy.max_bytes as u64) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(request_error)? {
            if body.len() + chunk.len() > self.policy.max_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

fn request_error(e: reqwest::Error) -> CoreError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(inner) = source {
        if inner.is::<Forbidden>() {
            return not_allowed();
        }
        source = inner.source();
    }
    if e.is_timeout() {
        return bad("Image URL timed out.");
    }
    bad("Image URL could not be fetched.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_and_not_public_addresses() {
        for public in ["8.8.8.8", "1.1.1.1", "151.101.1.69", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
        for private in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "198.18.0.1",
            "192.0.0.8",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "fc00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
    }

    #[test]
    fn allow_lists_widen_the_policy() {
        let policy = |allow_private, nets: &[&str]| UrlPolicy {
            enabled: true,
            allow_private,
            allowed_networks: nets.iter().map(|n| n.parse().unwrap()).collect(),
            max_bytes: 10,
            timeout: Duration::from_secs(1),
        };
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(!policy(false, &[]).permits(loopback));
        assert!(policy(true, &[]).permits(loopback));
        assert!(policy(false, &["127.0.0.1/32"]).permits(loopback));
        assert!(!policy(false, &["127.0.0.1/32"]).permits("127.0.0.2".parse().unwrap()));
    }
}
