//! The YOLO family: v5/v7/v8 heads, NMS, instance masks with their contours and RLE, and the task
//! model that ties them to a session.

pub mod contour;
pub mod decoder;
pub mod keypoints;
pub mod mask;
pub mod model;
pub mod nms;
pub mod output;
pub mod rle;
