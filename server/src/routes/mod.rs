//! HTTP routes. Fixed routes are registered before any pattern route so they always win.

pub mod health;
pub mod infer;
pub mod kserve;
pub mod legacy;
pub mod management;
pub mod model_store;
pub mod openapi;
pub mod responses;

use actix_web::{web, HttpResponse, ResponseError};

use crate::error::ApiError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/infer/object_detection", web::post().to(infer::object_detection))
        .route("/infer/instance_segmentation", web::post().to(infer::instance_segmentation))
        .route("/infer/keypoints_detection", web::post().to(infer::keypoints_detection))
        .route("/infer/classification", web::post().to(infer::classification))
        .route("/infer/ocr", web::post().to(infer::ocr))
        .route("/doctr/ocr", web::post().to(infer::doctr_ocr))
        .route("/model/add", web::post().to(management::add))
        .route("/model/remove", web::post().to(management::remove))
        .route("/model/clear", web::post().to(management::clear))
        .route("/model/registry", web::get().to(management::registry))
        .route("/models", web::get().to(model_store::list))
        .route("/models/pull", web::post().to(model_store::pull))
        .route("/models/{dataset_id}/{version_id}", web::delete().to(model_store::delete))
        .route("/info", web::get().to(health::info))
        .route("/healthz", web::get().to(health::healthz))
        .route("/readiness", web::get().to(health::readiness))
        .route("/metrics", web::get().to(health::metrics))
        .route("/openapi.json", web::get().to(openapi::openapi_json))
        .route("/docs", web::get().to(openapi::docs))
        .route("/v2", web::get().to(kserve::server_metadata))
        .route("/v2/health/live", web::get().to(kserve::live))
        .route("/v2/health/ready", web::get().to(kserve::ready))
        .route("/v2/models/{name}", web::get().to(kserve::model_metadata))
        .route("/v2/models/{name}/ready", web::get().to(kserve::model_ready_route))
        .route("/v2/models/{name}/infer", web::post().to(kserve::model_infer))
        .route("/v2/models/{name}/versions/{version}", web::get().to(kserve::version_metadata))
        .route("/v2/models/{name}/versions/{version}/ready", web::get().to(kserve::version_ready))
        .route("/v2/models/{name}/versions/{version}/infer", web::post().to(kserve::version_infer))
        .route("/clear_cache", web::get().to(legacy::clear_cache))
        .route("/start/{dataset_id}/{version_id}", web::get().to(legacy::start))
        // Last: any other two-segment path is a model id (spec §9).
        .route("/{dataset_id}/{version_id}", web::post().to(legacy::infer))
        .route("/{dataset_id}/{version_id}", web::get().to(legacy::infer))
        .default_service(web::to(not_found));
}

async fn not_found() -> HttpResponse {
    ApiError::NotFound.error_response()
}
