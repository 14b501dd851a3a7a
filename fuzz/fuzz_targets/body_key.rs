//! The scan for the API key in a request body's first bytes: arbitrary bytes, cut into two chunks
//! anywhere. Must never panic or hang, and must decide the same however the chunks fall.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sightline_server::fuzzing::body_key(data);
});
