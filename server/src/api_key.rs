//! The optional server API key (`SIGHTLINE_API_KEY`). The key a request carries is found with the
//! spec's precedence (§1.1): `api_key` query parameter, then `Authorization: Bearer`, then the
//! `api_key` field of a JSON body. `None`, `null` and empty values (what clients send for "no
//! key") count as absent. Health, readiness, info and metrics stay open for probes and scrapers.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{AUTHORIZATION, CONTENT_TYPE};
use actix_web::middleware::Next;
use actix_web::{web, ResponseError};

use crate::body::read_limited;
use crate::error::ApiError;
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
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| present(token)).flatten().map(str::to_owned)
}

fn is_json(req: &ServiceRequest) -> bool {
    req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"))
}

/// Reads the body (bounded like every body), finds `api_key` in it, and puts the body back for the handler.
async fn from_body(req: &mut ServiceRequest, limit: usize) -> Result<Option<String>, ApiError> {
    let payload = req.extract::<web::Payload>().await.map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let body = read_limited(payload, limit).await?;
    let key = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("api_key").and_then(|k| k.as_str()).and_then(present).map(str::to_owned));
    let (_, mut replay) = actix_http::h1::Payload::create(true);
    replay.unread_data(body);
    req.set_payload(Payload::from(replay));
    Ok(key)
}

/// Compares in time independent of where the first difference is.
fn same_key(given: &str, expected: &str) -> bool {
    given.len() == expected.len() && given.bytes().zip(expected.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

pub async fn require_api_key(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let checked = req
        .app_data::<web::Data<AppState>>()
        .and_then(|state| Some((state.server_api_key.clone()?, state.max_body_bytes)))
        .filter(|_| !OPEN_PATHS.contains(&req.path()));
    let Some((expected, limit)) = checked else {
        return next.call(req).await.map(ServiceResponse::map_into_boxed_body);
    };
    let mut given = from_query(&req).or_else(|| from_header(&req));
    if given.is_none() && is_json(&req) {
        given = match from_body(&mut req, limit).await {
            Ok(key) => key,
            Err(e) => return Ok(req.into_response(e.error_response())),
        };
    }
    if given.as_deref().is_some_and(|k| same_key(k, &expected)) {
        next.call(req).await.map(ServiceResponse::map_into_boxed_body)
    } else {
        let error = ApiError::Unauthorized(given.is_some());
        Ok(req.into_response(error.error_response()))
    }
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
