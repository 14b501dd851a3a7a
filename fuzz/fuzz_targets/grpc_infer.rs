//! The gRPC inference protocol's request decoding: arbitrary bytes as a `ModelInferRequest`
//! message, then its inputs (typed contents or raw) as tensors. Must never panic, hang or allocate
//! beyond what the message holds.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sightline_server::fuzzing::grpc_infer(data);
});
