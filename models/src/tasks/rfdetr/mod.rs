//! RF-DETR (Roboflow's detector): ImageNet-normalised input, `dets (B, Q, 4)` normalised
//! `cx, cy, w, h` and `labels (B, Q, C)` logits, top-k over queries × classes without NMS; the
//! segmentation models add `masks (B, Q, h, w)` logits over the whole input.

pub mod decoder;
pub mod frame;
pub mod mask;
pub mod model;
