//! Open Inference Protocol bodies in JSON: parse (datatypes, shapes, nested data, parameters) and
//! encode the answer. Must never panic, hang or allocate beyond what the body holds.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sightline_server::fuzzing::kserve_json(data);
});
