//! The YOLO family: v5/v7/v8/11/12 heads, YOLO26's and YOLOv10's end-to-end heads, NMS, instance
//! masks from prototypes, keypoints, and the task model that ties them to a session.

pub mod decoder;
pub mod keypoints;
pub mod mask;
pub mod model;
pub mod nms;
pub mod output;
