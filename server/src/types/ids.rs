//! Model ids as the API documents them: the pattern is the one `ModelId::parse` enforces, written
//! once (`sightline_core::model_id::SEGMENT_PATTERN`) and used by every route that takes an id.

use sightline_core::model_id::SEGMENT_PATTERN;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

/// A string matching `pattern`, with `description` where the id's place needs one.
fn text(pattern: String, description: Option<&str>) -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::String).pattern(Some(pattern)).description(description).into()
}

fn model_id_pattern() -> String {
    format!("^{SEGMENT_PATTERN}/{SEGMENT_PATTERN}$")
}

/// `dataset/version`, e.g. `shapes/1`.
pub struct ModelIdText;

impl PartialSchema for ModelIdText {
    fn schema() -> RefOr<Schema> {
        text(model_id_pattern(), None)
    }
}

impl ToSchema for ModelIdText {}

/// The image routes' `model_id`, which the query may give instead.
pub struct BodyModelId;

impl PartialSchema for BodyModelId {
    fn schema() -> RefOr<Schema> {
        text(model_id_pattern(), Some("`dataset/version`; may come from the `model_id` query parameter instead."))
    }
}

impl ToSchema for BodyModelId {}

/// One segment of a model id: a dataset (model name) or a version.
pub struct IdSegment;

impl PartialSchema for IdSegment {
    fn schema() -> RefOr<Schema> {
        text(format!("^{SEGMENT_PATTERN}$"), None)
    }
}

impl ToSchema for IdSegment {}
