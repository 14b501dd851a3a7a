//! Compiles the Open Inference Protocol's gRPC service (`proto/inference.proto`) with the protoc
//! that `protoc-bin-vendored` ships, so the build needs no system protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/inference.proto");
    // SAFETY: build scripts are single-threaded; the variable is read by the compiler step below.
    unsafe { std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?) };
    tonic_prost_build::configure().build_client(false).compile_protos(&["proto/inference.proto"], &["proto"])?;
    Ok(())
}
