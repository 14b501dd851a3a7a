//! HTTP routes: each handler parses and checks a request, asks the service, and shapes the answer.
//! The operations are listed once (`table.rs`); the router and the OpenAPI document are built
//! from that list.

mod answers;
pub mod embed;
pub mod extensions;
pub mod health;
pub mod infer;
pub mod kserve;
pub mod legacy;
pub mod management;
pub mod model_store;
pub mod openapi;
mod table;

use actix_web::http::Method;
use actix_web::{web, HttpResponse, ResponseError, Route};

use crate::error::ApiError;

/// Each documented path (as the router matches it) with its methods, for the metrics' series.
pub fn paths_and_methods() -> Vec<(String, Vec<String>)> {
    table::operations()
        .into_iter()
        .map(|o| (o.path, o.methods.iter().map(|m| m.as_str().to_owned()).collect()))
        .collect()
}

/// Every path with its methods; any other method on a known path is answered 405 with `Allow`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(openapi::configure_docs);
    let mut paths: Vec<(String, Vec<(Method, Route)>)> = vec![(
        "/openapi.json".into(),
        vec![
            (Method::GET, web::get().to(openapi::openapi_json)),
            (Method::HEAD, web::head().to(openapi::openapi_json)),
        ],
    )];
    for operation in table::operations() {
        // HTTP requires HEAD wherever GET is: the same handler, whose body actix does not send.
        let head = operation.methods.contains(&Method::GET).then_some(Method::HEAD);
        let methods = operation.methods.iter().cloned().chain(head);
        let routes = methods.map(|m| (m.clone(), (operation.route)(m)));
        match paths.iter_mut().find(|(path, _)| *path == operation.path) {
            Some((_, existing)) => existing.extend(routes),
            None => paths.push((operation.path, routes.collect())),
        }
    }
    for (path, methods) in paths {
        let allow = methods.iter().map(|(m, _)| m.as_str()).collect::<Vec<_>>().join(", ");
        let mut resource = web::resource(path);
        for (_, route) in methods {
            resource = resource.route(route);
        }
        cfg.service(resource.default_service(web::to(move || {
            let allow = allow.clone();
            async move { method_not_allowed(&allow) }
        })));
    }
    cfg.default_service(web::to(not_found));
}

/// The OpenAPI document of the operations in the table.
pub fn document() -> utoipa::openapi::OpenApi {
    openapi::document(table::paths(), table::schemas())
}

async fn not_found() -> HttpResponse {
    ApiError::NotFound.error_response()
}

fn method_not_allowed(allow: &str) -> HttpResponse {
    let mut response = ApiError::MethodNotAllowed(allow.to_owned()).error_response();
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(allow) {
        response.headers_mut().insert(actix_web::http::header::ALLOW, value);
    }
    response
}
