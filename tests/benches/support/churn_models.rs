//! The models the soak and isolation benches churn: `shapes/1`, `ppocr/4` and a generated 44 MB
//! 640x640 YOLOv8-shaped detector `big/1` (`scripts/make_big_model.py`), in a model folder of
//! their own; and the server process they run, killed when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// `work/models` holding the three models; `python` has onnx (the `make setup` venv).
pub fn churn_models(root: &Path, work: &Path, python: &Path) -> PathBuf {
    let models = work.join("models");
    copy_dir(&root.join("assets/models/shapes/1"), &models.join("shapes/1"));
    copy_dir(&root.join("assets/models/ppocr/4"), &models.join("ppocr/4"));
    let generated =
        Command::new(python).arg(root.join("scripts/make_big_model.py")).arg(models.join("big/1")).arg("44").status();
    assert!(generated.expect("the .venv Python (make setup installs onnx into it)").success());
    models
}

pub struct ServerProcess(pub std::process::Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
