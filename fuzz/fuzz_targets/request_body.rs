//! The request-body and image-decoding path: arbitrary bytes as a JSON inference body (parse,
//! parameter checks, base64, decode with the server's limits), and as a raw upload (decode).
//! Must never panic, hang or allocate beyond the limits.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sightline_server::fuzzing::request_body(data);
});
