//! HTTP routes. Fixed routes are registered before any pattern route so they always win.

pub mod health;
pub mod infer;
pub mod kserve;
pub mod legacy;
pub mod management;
pub mod model_store;
pub mod openapi;
pub mod responses;

use actix_web::http::Method;
use actix_web::{web, FromRequest, Handler, HttpResponse, Responder, ResponseError, Route};

use crate::error::ApiError;

/// Every path with its methods; any other method on a known path is answered 405 with `Allow`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let routes: Vec<(&str, Vec<(Method, Route)>)> = vec![
        ("/infer/object_detection", vec![on(Method::POST, infer::object_detection)]),
        ("/infer/instance_segmentation", vec![on(Method::POST, infer::instance_segmentation)]),
        ("/infer/keypoints_detection", vec![on(Method::POST, infer::keypoints_detection)]),
        ("/infer/classification", vec![on(Method::POST, infer::classification)]),
        ("/infer/ocr", vec![on(Method::POST, infer::ocr)]),
        ("/doctr/ocr", vec![on(Method::POST, infer::doctr_ocr)]),
        ("/model/add", vec![on(Method::POST, management::add)]),
        ("/model/remove", vec![on(Method::POST, management::remove)]),
        ("/model/clear", vec![on(Method::POST, management::clear)]),
        ("/model/registry", vec![on(Method::GET, management::registry)]),
        ("/models", vec![on(Method::GET, model_store::list)]),
        ("/models/pull", vec![on(Method::POST, model_store::pull)]),
        ("/models/{dataset_id}/{version_id}", vec![on(Method::DELETE, model_store::delete)]),
        ("/info", vec![on(Method::GET, health::info)]),
        ("/healthz", vec![on(Method::GET, health::healthz)]),
        ("/readiness", vec![on(Method::GET, health::readiness)]),
        ("/metrics", vec![on(Method::GET, health::metrics)]),
        ("/openapi.json", vec![on(Method::GET, openapi::openapi_json)]),
        ("/v2", vec![on(Method::GET, kserve::server_metadata)]),
        ("/v2/health/live", vec![on(Method::GET, kserve::live)]),
        ("/v2/health/ready", vec![on(Method::GET, kserve::ready)]),
        ("/v2/models/{name}", vec![on(Method::GET, kserve::model_metadata)]),
        ("/v2/models/{name}/ready", vec![on(Method::GET, kserve::model_ready_route)]),
        ("/v2/models/{name}/infer", vec![on(Method::POST, kserve::model_infer)]),
        ("/v2/models/{name}/versions/{version}", vec![on(Method::GET, kserve::version_metadata)]),
        ("/v2/models/{name}/versions/{version}/ready", vec![on(Method::GET, kserve::version_ready)]),
        ("/v2/models/{name}/versions/{version}/infer", vec![on(Method::POST, kserve::version_infer)]),
        ("/clear_cache", vec![on(Method::GET, legacy::clear_cache)]),
        ("/start/{dataset_id}/{version_id}", vec![on(Method::GET, legacy::start)]),
        // Last: any other two-segment path is a model id (spec §9).
        ("/{dataset_id}/{version_id}", vec![on(Method::POST, legacy::infer), on(Method::GET, legacy::infer)]),
    ];
    cfg.configure(openapi::configure_docs);
    for (path, methods) in routes {
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

/// A route with the method it answers, so that the `Allow` list is derived from the routes.
fn on<F, Args>(method: Method, handler: F) -> (Method, Route)
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    (method.clone(), web::method(method).to(handler))
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
