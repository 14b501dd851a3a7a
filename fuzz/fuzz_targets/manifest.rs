//! A cache entry's `manifest.json`: read, validated and checked against the entry. Must never
//! panic, and an accepted manifest names only files inside the entry.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sightline_server::fuzzing::manifest(data);
});
