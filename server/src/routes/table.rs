//! Every operation of the HTTP API, listed once, in the order the router tries their paths (fixed
//! paths before the legacy route's catch-all `/{dataset_id}/{version_id}`). The path and methods
//! of each come from its `#[utoipa::path]`, so the router and the OpenAPI document cannot differ.

use std::marker::PhantomData;

use actix_web::http::Method;
use actix_web::{web, Route};
use utoipa::openapi::path::{HttpMethod, Operation as Documented, Paths};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;

/// One operation: where it is served, with which methods, and its route for each method.
pub struct Operation {
    pub path: String,
    pub methods: Vec<Method>,
    pub route: fn(Method) -> Route,
}

macro_rules! operations {
    ($($module:ident :: $handler:ident),* $(,)?) => {
        paste::paste! {
            /// The operations, in routing order.
            pub fn operations() -> Vec<Operation> {
                vec![$(Operation {
                    path: <super::$module::[<__path_ $handler>] as utoipa::Path>::path(),
                    methods: methods(<super::$module::[<__path_ $handler>] as utoipa::Path>::methods()),
                    route: |method| web::method(method).to(super::$module::$handler),
                }),*]
            }

            /// The operations as the OpenAPI document describes them.
            pub fn paths() -> Paths {
                Paths::builder()$(.path_from::<Tagged<super::$module::[<__path_ $handler>]>>())*.build()
            }

            /// The schemas the operations' bodies refer to.
            pub fn schemas() -> Vec<(String, RefOr<Schema>)> {
                let mut schemas = Vec::new();
                $(<super::$module::[<__path_ $handler>] as utoipa::__dev::SchemaReferences>::schemas(&mut schemas);)*
                schemas
            }
        }
    };
}

operations! {
    infer::object_detection,
    infer::instance_segmentation,
    infer::keypoints_detection,
    infer::classification,
    infer::ocr,
    infer::doctr_ocr,
    embed::clip_embed_image,
    embed::clip_embed_text,
    embed::clip_compare,
    embed::embed_image,
    embed::embed_text,
    embed::embed_models,
    embed::register_model,
    management::add,
    management::remove,
    management::clear,
    management::registry,
    model_store::list,
    model_store::pull,
    model_store::delete,
    health::info,
    health::healthz,
    health::readiness,
    health::metrics,
    kserve::server_metadata,
    extensions::repository_index,
    extensions::repository_load,
    extensions::repository_unload,
    extensions::repository_version_load,
    extensions::repository_version_unload,
    extensions::all_stats,
    kserve::live,
    kserve::ready,
    kserve::model_metadata,
    kserve::model_ready_route,
    kserve::model_infer,
    kserve::model_config,
    extensions::model_stats,
    kserve::version_metadata,
    kserve::version_ready,
    kserve::version_infer,
    kserve::version_config,
    extensions::version_stats,
    legacy::clear_cache,
    legacy::start,
    // Last: any other two-segment path is a model id (Roboflow's legacy route).
    legacy::infer,
}

/// An operation as its `#[utoipa::path]` describes it, with its `tag` in it (which utoipa keeps
/// apart, for its `OpenApi` derive to add).
struct Tagged<P>(PhantomData<P>);

impl<P: utoipa::Path + for<'t> utoipa::__dev::Tags<'t>> utoipa::Path for Tagged<P> {
    fn methods() -> Vec<HttpMethod> {
        P::methods()
    }

    fn path() -> String {
        P::path()
    }

    fn operation() -> Documented {
        let mut operation = P::operation();
        operation.tags.get_or_insert_with(Vec::new).extend(P::tags().into_iter().map(str::to_owned));
        operation
    }
}

fn methods(documented: Vec<HttpMethod>) -> Vec<Method> {
    documented
        .into_iter()
        .map(|m| match m {
            HttpMethod::Get => Method::GET,
            HttpMethod::Post => Method::POST,
            HttpMethod::Put => Method::PUT,
            HttpMethod::Delete => Method::DELETE,
            HttpMethod::Options => Method::OPTIONS,
            HttpMethod::Head => Method::HEAD,
            HttpMethod::Patch => Method::PATCH,
            HttpMethod::Trace => Method::TRACE,
        })
        .collect()
}
