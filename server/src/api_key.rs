//! The optional server API key (`SIGHTLINE_API_KEY`), checked before any work. The key a request
//! carries is found with the spec's precedence (§1.1): `api_key` query parameter, then
//! `Authorization: Bearer` (neither reads the body), then the `api_key` field of a JSON body, found
//! by a scan of its first bytes as they arrive (`body_key`). `None`, `null` and empty values (what clients send for "no
//! key") count as absent. Health, readiness, info and metrics stay open for probes and scrapers.

use actix_http::BoxedPayloadStream;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{AUTHORIZATION, CONTENT_TYPE};
use actix_web::middleware::Next;
use actix_web::web::BytesMut;
use actix_web::{web, HttpMessage, ResponseError};
use futures::StreamExt;

use crate::body_key::{Found, KeyScan};
use crate::error::{ApiError, KeyProblem};
use crate::request_body::timed_out;
use crate::state::AppState;

const OPEN_PATHS: [&str; 4] = ["/healthz", "/readiness", "/info", "/metrics"];

fn present(value: &str) -> Option<&str> {
    let value = value.trim();
    (!value.is_empty() && value != "None" && value != "null").then_some(value)
}

fn from_query(req: &ServiceRequest) -> Option<String> {
    let query = web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string()).ok()?;
    query.get("api_key").and_then(|v| present(v)).map(str::to_owned)
}

fn from_header(req: &ServiceRequest) -> Option<String> {
    bearer(req.headers().get(AUTHORIZATION)?.to_str().ok()?).map(str::to_owned)
}

/// The key of an `Authorization: Bearer <key>` value (HTTP header or gRPC metadata), if present.
pub(crate) fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| present(token)).flatten()
}

fn is_json(req: &ServiceRequest) -> bool {
    req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"))
}

/// Reads the body only until the key scan decides (its first bytes: see `body_key`), then puts
/// what it read back in front of the rest for the handler. Nothing is parsed or buffered beyond
/// that, so a request without a valid key costs kilobytes whatever its size.
async fn from_body(req: &mut ServiceRequest) -> Result<Found, ApiError> {
    let mut payload = req.take_payload();
    let mut read = BytesMut::new();
    let mut scan = KeyScan::default();
    let (found, ended) = loop {
        match payload.next().await {
            Some(Ok(chunk)) => {
                read.extend_from_slice(&chunk);
                if *scan.feed(&chunk) != Found::Undecided {
                    break (scan.finish().clone(), false);
                }
            }
            Some(Err(e)) if timed_out(&e) => return Err(ApiError::BodyTimeout),
            Some(Err(e)) => return Err(ApiError::BadRequest(format!("Could not read the request body: {e}"))),
            None => break (scan.finish().clone(), true),
        }
    };
    let read = futures::stream::once(futures::future::ready(Ok(read.freeze())));
    let body: BoxedPayloadStream = if ended { Box::pin(read) } else { Box::pin(read.chain(payload)) };
    req.set_payload(Payload::Stream { payload: body });
    Ok(found)
}

/// Compares in time independent of where the first difference is.
pub(crate) fn same_key(given: &str, expected: &str) -> bool {
    given.len() == expected.len() && given.bytes().zip(expected.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

pub async fn require_api_key(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let checked = req
        .app_data::<web::Data<AppState>>()
        .and_then(|state| state.server_api_key.clone())
        .filter(|_| !OPEN_PATHS.contains(&req.path()));
    let Some(expected) = checked else {
        return next.call(req).await.map(ServiceResponse::map_into_boxed_body);
    };
    let mut given = from_query(&req).or_else(|| from_header(&req)).map(Found::Key).unwrap_or(Found::NoKey);
    if given == Found::NoKey && is_json(&req) {
        given = match from_body(&mut req).await {
            // A body's key counts as absent (or is trimmed) as the query's and the header's do.
            Ok(Found::Key(key)) => present(&key).map_or(Found::NoKey, |k| Found::Key(k.to_owned())),
            Ok(found) => found,
            Err(e) => return Ok(req.into_response(e.error_response())),
        };
    }
    let problem = match &given {
        Found::Key(key) if same_key(key, &expected) => {
            return next.call(req).await.map(ServiceResponse::map_into_boxed_body);
        }
        Found::Key(_) => KeyProblem::Wrong,
        Found::NotWithinLimit => KeyProblem::NotEarlyInBody,
        Found::NoKey | Found::Undecided => KeyProblem::Missing,
    };
    Ok(req.into_response(ApiError::Unauthorized(problem).error_response()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_values_and_comparison() {
        assert_eq!(present(" None "), None);
        assert_eq!(present("null"), None);
        assert_eq!(present(""), None);
        assert_eq!(present("k1"), Some("k1"));
        assert!(same_key("secret", "secret"));
        assert!(!same_key("secret", "secreT"));
        assert!(!same_key("secret", "secret2"));
    }
}
