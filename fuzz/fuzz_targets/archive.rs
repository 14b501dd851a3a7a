//! A model archive (`.tar.gz`) as the `url` source reads it. Must never panic; an accepted archive
//! hands on only file names a cache entry may hold, and no more bytes than the limit.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sightline_server::fuzzing::archive(data);
});
