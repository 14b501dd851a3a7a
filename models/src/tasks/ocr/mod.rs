//! PP-OCR text reading: DB text detection, optional 180° classifier, CRNN/SVTR recognition with CTC,
//! following rapidocr's defaults (which the reference outputs used).

pub mod ctc;
pub mod db_postprocess;
pub mod model;
pub mod perspective;
