//! HTTP routes. Fixed routes are registered before any pattern route so they always win.

pub mod health;
pub mod infer;
pub mod kserve;
pub mod legacy;
pub mod management;
pub mod model_store;
pub mod openapi;
pub mod responses;

use actix_web::{web, HttpResponse, ResponseError, Route};

use crate::error::ApiError;

/// Every path with its methods; any other method on a known path is answered 405 with `Allow`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    use actix_web::http::Method;
    let get = || Method::GET;
    let post = || Method::POST;
    let routes: Vec<(&str, Vec<(Method, Route)>)> = vec![
        ("/infer/object_detection", vec![(post(), web::post().to(infer::object_detection))]),
        ("/infer/instance_segmentation", vec![(post(), web::post().to(infer::instance_segmentation))]),
        ("/infer/keypoints_detection", vec![(post(), web::post().to(infer::keypoints_detection))]),
        ("/infer/classification", vec![(post(), web::post().to(infer::classification))]),
        ("/infer/ocr", vec![(post(), web::post().to(infer::ocr))]),
        ("/doctr/ocr", vec![(post(), web::post().to(infer::doctr_ocr))]),
        ("/model/add", vec![(post(), web::post().to(management::add))]),
        ("/model/remove", vec![(post(), web::post().to(management::remove))]),
        ("/model/clear", vec![(post(), web::post().to(management::clear))]),
        ("/model/registry", vec![(get(), web::get().to(management::registry))]),
        ("/models", vec![(get(), web::get().to(model_store::list))]),
        ("/models/pull", vec![(post(), web::post().to(model_store::pull))]),
        ("/models/{dataset_id}/{version_id}", vec![(Method::DELETE, web::delete().to(model_store::delete))]),
        ("/info", vec![(get(), web::get().to(health::info))]),
        ("/healthz", vec![(get(), web::get().to(health::healthz))]),
        ("/readiness", vec![(get(), web::get().to(health::readiness))]),
        ("/metrics", vec![(get(), web::get().to(health::metrics))]),
        ("/openapi.json", vec![(get(), web::get().to(openapi::openapi_json))]),
        ("/v2", vec![(get(), web::get().to(kserve::server_metadata))]),
        ("/v2/health/live", vec![(get(), web::get().to(kserve::live))]),
        ("/v2/health/ready", vec![(get(), web::get().to(kserve::ready))]),
        ("/v2/models/{name}", vec![(get(), web::get().to(kserve::model_metadata))]),
        ("/v2/models/{name}/ready", vec![(get(), web::get().to(kserve::model_ready_route))]),
        ("/v2/models/{name}/infer", vec![(post(), web::post().to(kserve::model_infer))]),
        ("/v2/models/{name}/versions/{version}", vec![(get(), web::get().to(kserve::version_metadata))]),
        ("/v2/models/{name}/versions/{version}/ready", vec![(get(), web::get().to(kserve::version_ready))]),
        ("/v2/models/{name}/versions/{version}/infer", vec![(post(), web::post().to(kserve::version_infer))]),
        ("/clear_cache", vec![(get(), web::get().to(legacy::clear_cache))]),
        ("/start/{dataset_id}/{version_id}", vec![(get(), web::get().to(legacy::start))]),
        // Last: any other two-segment path is a model id (spec §9).
        (
            "/{dataset_id}/{version_id}",
            vec![(post(), web::post().to(legacy::infer)), (get(), web::get().to(legacy::infer))],
        ),
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
