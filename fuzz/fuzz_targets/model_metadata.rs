//! The metadata a model source supplies (`model_type.json`, `environment.json`,
//! `class_names.txt`, `keypoints_metadata.json`), read as a load reads them. Must never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sightline_server::fuzzing::model_metadata(data);
});
