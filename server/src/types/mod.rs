//! Every type the HTTP routes read or write, in one place: request bodies, answers, the documented
//! errors and the id schemas. Handlers build these; the OpenAPI document is generated from them.

pub mod embeddings;
pub mod errors;
pub mod ids;
pub mod models;
pub mod protocol;
pub mod requests;
pub mod responses;
