//! Entry points for the fuzz targets (`fuzz/`, `make fuzz`): the paths that take untrusted bytes,
//! run synchronously and without a model or a network.

use sightline_models::image::decode::decode_image;
use sightline_models::DecodeLimits;

/// Smaller than the server's default so that each fuzz run stays fast; the checks are the same.
const FUZZ_MAX_PIXELS: u64 = 4_000_000;

/// `data` as a JSON inference body (every field check, base64, decoding) and as a raw upload.
pub fn request_body(data: &[u8]) {
    let limits = DecodeLimits { max_pixels: FUZZ_MAX_PIXELS, ..DecodeLimits::default() };
    for image in crate::routes::infer::check_body(data).into_iter().flatten() {
        let _ = decode_image(&image, true, limits);
    }
    let _ = decode_image(data, true, limits);
}
