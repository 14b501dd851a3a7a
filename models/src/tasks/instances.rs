//! A task model's instances as both kinds of request reach them: its images, and the protocol's
//! tensors through the same queue, batches and admission (429), checked against its signature.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use image::{Rgb, RgbImage};
use sightline_core::{
    CoreError, DetectOptions, Detection, DetectionOutput, ImageRequest, ModelQueue, PreprocessingFlags, RunTensors,
    Tensor, TensorSignature, Ticket,
};
use sightline_engine::{
    run_blocking, EngineError, InFlight, ModelSession, ModelSessions, OnnxWorker, Outputs, StageTimers,
};

use crate::image::drawing::{draw_detections, encode_jpeg};
use crate::image::letterbox::Placement;
use crate::image::preprocess::{prepare, InputSpec};
use crate::load_options::LoadOptions;
use crate::ModelError;

/// A detection family's post-processing: its outputs for one image into detections in the frame.
pub trait DetectionDecoder: Send + Sync + 'static {
    fn input(&self) -> InputSpec;

    /// The box colour of each class, for the visualisation.
    fn colors(&self) -> &[Rgb<u8>];

    fn decode(
        &self,
        outputs: &Outputs,
        placement: &Placement,
        options: &DetectOptions,
    ) -> Result<Vec<Detection>, ModelError>;
}

pub struct Instances {
    worker: OnnxWorker,
    /// `None` where the session has inputs or outputs the protocol cannot carry.
    signature: Option<TensorSignature>,
    timers: StageTimers,
}

/// One image's run: the outputs, where the image sits in the input, and the decoded frame when a
/// visualization will be drawn on it. The request counts as in flight until `in_flight` is
/// dropped, so keep it through post-processing.
pub struct Ran {
    pub outputs: Outputs,
    pub placement: Placement,
    pub frame: Option<RgbImage>,
    pub in_flight: InFlight,
}

impl Instances {
    /// Serves `session` of `file` (built and checked) with the deployment's instances of it, each
    /// run taking at most `batch_limit` inputs; `signature` is what the protocol may send it.
    pub fn start(
        sessions: &mut ModelSessions<'_>,
        file: &Path,
        session: ModelSession,
        batch_limit: usize,
        signature: Option<TensorSignature>,
        options: &LoadOptions,
        name: &str,
    ) -> Result<Instances, EngineError> {
        let all = sessions.instances(file, session, false)?;
        let worker_options = options.worker(name, batch_limit, false);
        let timers = worker_options.timers.clone();
        let worker = OnnxWorker::start(all, name, worker_options)?;
        Ok(Instances { worker, signature, timers })
    }

    pub fn timers(&self) -> &StageTimers {
        &self.timers
    }

    /// The queue the images wait in.
    pub fn queue(&self) -> &std::sync::Arc<ModelQueue> {
        self.worker.queue()
    }

    /// Admits one image (or refuses it at once when the model's queue is over its bounds; a list's
    /// image comes with its `ticket`), decodes and prepares it for `input` on the CPU pool once
    /// its tensor has room in the queue, and runs it on the instances.
    pub async fn run_image(
        &self,
        image: Vec<u8>,
        ticket: Option<Ticket>,
        preprocessing: PreprocessingFlags,
        input: InputSpec,
        keep_frame: bool,
    ) -> Result<Ran, CoreError> {
        let in_flight = self.worker.in_flight();
        let place = self.worker.place(ticket).await?;
        let prepared = prepare(image, preprocessing, input, keep_frame).await?;
        self.timers.decode.observe(prepared.decode.as_secs_f64());
        self.timers.preprocess.observe(prepared.preprocess.as_secs_f64());
        let outputs = self.worker.run(prepared.tensor, place).await?;
        Ok(Ran { outputs, placement: prepared.placement, frame: prepared.frame, in_flight })
    }

    /// Admits one input (or takes its `ticket`), builds its tensor with `prepare` on the CPU pool
    /// (decoding included) once it has room in the queue, and runs it; the in-flight guard is
    /// returned with the outputs, to be held through post-processing.
    pub async fn run_prepared(
        &self,
        ticket: Option<Ticket>,
        prepare: impl FnOnce() -> Result<ndarray::Array4<f32>, ModelError> + Send + 'static,
    ) -> Result<(Outputs, InFlight), CoreError> {
        let in_flight = self.worker.in_flight();
        let place = self.worker.place(ticket).await?;
        let started = std::time::Instant::now();
        let tensor = run_blocking("preprocessing", prepare).await??;
        self.timers.preprocess.observe(started.elapsed().as_secs_f64());
        let outputs = self.worker.run(tensor, place).await?;
        Ok((outputs, in_flight))
    }

    /// Runs one detection-like request: the image through the instances, then `decoder` and the
    /// visualisation on the bounded CPU pool (masks and drawing cost real CPU on large images).
    pub async fn detect(
        &self,
        decoder: &Arc<impl DetectionDecoder>,
        request: ImageRequest<DetectOptions>,
    ) -> Result<DetectionOutput, CoreError> {
        let (options, visualize) = (request.options, request.visualize);
        let Ran { outputs, placement, frame, in_flight: _in_flight } = self
            .run_image(request.image, request.ticket, request.preprocessing, decoder.input(), visualize.is_some())
            .await?;
        let decoder = decoder.clone();
        let postprocess = self.timers.postprocess.clone();
        let (predictions, visualization) = run_blocking("post-processing", move || -> Result<_, ModelError> {
            let started = std::time::Instant::now();
            let predictions = decoder.decode(&outputs, &placement, &options)?;
            let visualization = match (frame, visualize) {
                (Some(mut frame), Some(params)) => {
                    draw_detections(&mut frame, &predictions, decoder.colors(), &params);
                    Some(encode_jpeg(&frame)?)
                }
                _ => None,
            };
            postprocess.observe(started.elapsed().as_secs_f64());
            Ok((predictions, visualization))
        })
        .await??;
        Ok(DetectionOutput {
            image_width: placement.frame_w,
            image_height: placement.frame_h,
            predictions,
            visualization,
        })
    }

    /// The tensor capability, where the session has a signature.
    pub fn tensor_runner(&self) -> Option<&dyn RunTensors> {
        self.signature.is_some().then_some(self as &dyn RunTensors)
    }
}

#[async_trait]
impl RunTensors for Instances {
    async fn run_tensors(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, CoreError> {
        let signature = self.signature.as_ref().ok_or_else(|| CoreError::Internal("no tensor signature".into()))?;
        let inputs = signature.arrange(inputs)?;
        let _in_flight = self.worker.in_flight();
        let place = self.worker.place(None).await?;
        Ok(self.worker.run_tensors(inputs, place).await?)
    }
}
