//! Open Inference Protocol bodies with the binary tensor data extension: a header length, a JSON
//! header, then tensor bytes claimed by `binary_data_size`. Must never panic or read past the body.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sightline_server::fuzzing::kserve_binary(data);
});
