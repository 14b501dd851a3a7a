//! A bound on the request target (path and query): an over-long URL is refused with 414 and the
//! JSON error before any route parses it. Roboflow's routes carry an image URL in the query, and a
//! signed object-store URL is a few kilobytes; 16 KiB is twice nginx's default line buffer. Past
//! 64 KiB the HTTP parser itself cannot hold the line and answers 400 without a body.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::ResponseError;

use crate::error::ApiError;

/// The longest request target accepted, in bytes.
pub const MAX_URL_BYTES: usize = 16 * 1024;

pub async fn limit_url_length(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let length = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if length > MAX_URL_BYTES {
        let error = ApiError::UriTooLong { length, limit: MAX_URL_BYTES };
        return Ok(req.into_response(error.error_response()));
    }
    next.call(req).await.map(ServiceResponse::map_into_boxed_body)
}
