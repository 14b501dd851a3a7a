//! Tensors between the gRPC messages and the service: `raw_input_contents` (one little-endian blob
//! per input, as tritonclient sends them) or typed contents in, raw contents out (as Triton answers).

use sightline_core::{CoreError, DataType, Tensor};

use super::proto::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use super::proto::model_infer_response::InferOutputTensor;
use super::proto::InferTensorContents;

fn invalid(message: String) -> CoreError {
    CoreError::InvalidTensor(message)
}

/// The request's inputs as tensors; `raw` (the request's `raw_input_contents`) holds one blob per
/// input when given.
pub fn inputs(inputs: Vec<InferInputTensor>, raw: Vec<Vec<u8>>) -> Result<Vec<Tensor>, CoreError> {
    if !raw.is_empty() && raw.len() != inputs.len() {
        return Err(invalid(format!(
            "raw_input_contents has {} entries for {} inputs; give one per input, in their order",
            raw.len(),
            inputs.len()
        )));
    }
    let mut raw = raw.into_iter();
    inputs
        .into_iter()
        .map(|input| {
            let datatype = DataType::parse(&input.datatype).ok_or_else(|| {
                invalid(format!("input {:?}: datatype {:?} is not served", input.name, input.datatype))
            })?;
            let shape = input
                .shape
                .iter()
                .map(|&d| {
                    usize::try_from(d).map_err(|_| invalid(format!("input {:?}: shape {:?}", input.name, input.shape)))
                })
                .collect::<Result<Vec<usize>, _>>()?;
            let data = match raw.next() {
                Some(bytes) => bytes,
                None => typed(&input.name, datatype, input.contents.unwrap_or_default())?,
            };
            Tensor::new(input.name, datatype, shape, data)
        })
        .collect()
}

/// Typed contents as little-endian bytes; the narrow integers travel widened and must fit.
fn typed(name: &str, datatype: DataType, contents: InferTensorContents) -> Result<Vec<u8>, CoreError> {
    fn narrowed<W: Copy + std::fmt::Display, N: TryFrom<W>>(
        name: &str,
        values: &[W],
        bytes: impl Fn(N) -> Vec<u8>,
    ) -> Result<Vec<u8>, CoreError> {
        let mut out = Vec::with_capacity(values.len() * std::mem::size_of::<N>());
        for &v in values {
            let n =
                N::try_from(v).map_err(|_| invalid(format!("input {name:?}: {v} is out of its datatype's range")))?;
            out.extend(bytes(n));
        }
        Ok(out)
    }
    let c = contents;
    Ok(match datatype {
        DataType::Bool => c.bool_contents.iter().map(|&b| u8::from(b)).collect(),
        DataType::Int8 => narrowed(name, &c.int_contents, |n: i8| n.to_le_bytes().to_vec())?,
        DataType::Int16 => narrowed(name, &c.int_contents, |n: i16| n.to_le_bytes().to_vec())?,
        DataType::Int32 => c.int_contents.iter().flat_map(|v| v.to_le_bytes()).collect(),
        DataType::Int64 => c.int64_contents.iter().flat_map(|v| v.to_le_bytes()).collect(),
        DataType::Uint8 => narrowed(name, &c.uint_contents, |n: u8| vec![n])?,
        DataType::Uint16 => narrowed(name, &c.uint_contents, |n: u16| n.to_le_bytes().to_vec())?,
        DataType::Uint32 => c.uint_contents.iter().flat_map(|v| v.to_le_bytes()).collect(),
        DataType::Uint64 => c.uint64_contents.iter().flat_map(|v| v.to_le_bytes()).collect(),
        DataType::Fp32 => c.fp32_contents.iter().flat_map(|v| v.to_le_bytes()).collect(),
        DataType::Fp64 => c.fp64_contents.iter().flat_map(|v| v.to_le_bytes()).collect(),
        DataType::Fp16 => {
            return Err(invalid(format!("input {name:?}: FP16 has no typed contents; send it in raw_input_contents")))
        }
    })
}

/// The outputs asked for (every output when none is named), in the order asked, with their bytes
/// as `raw_output_contents`.
pub fn outputs(
    tensors: Vec<Tensor>,
    requested: &[InferRequestedOutputTensor],
) -> Result<(Vec<InferOutputTensor>, Vec<Vec<u8>>), CoreError> {
    let mut tensors: Vec<Option<Tensor>> = tensors.into_iter().map(Some).collect();
    let chosen: Vec<Tensor> = if requested.is_empty() {
        tensors.into_iter().flatten().collect()
    } else {
        let mut chosen = Vec::with_capacity(requested.len());
        for asked in requested {
            let slot = tensors.iter_mut().find(|t| t.as_ref().is_some_and(|t| t.name == asked.name));
            let tensor = slot.and_then(Option::take).ok_or_else(|| {
                invalid(format!("output {:?} is not an output of the model, or is asked twice", asked.name))
            })?;
            chosen.push(tensor);
        }
        chosen
    };
    Ok(chosen
        .into_iter()
        .map(|t| {
            let shape = t.shape.iter().map(|&d| d as i64).collect();
            let output = InferOutputTensor {
                name: t.name,
                datatype: t.datatype.as_str().to_owned(),
                shape,
                parameters: Default::default(),
                contents: None,
            };
            (output, t.data)
        })
        .unzip())
}

/// The model metadata in the protocol's message.
pub fn metadata(metadata: crate::types::protocol::ModelMetadata) -> super::proto::ModelMetadataResponse {
    use super::proto::model_metadata_response::TensorMetadata;
    let tensors = |specs: Vec<crate::types::protocol::TensorMetadata>| -> Vec<TensorMetadata> {
        specs
            .into_iter()
            .map(|s| TensorMetadata { name: s.name, datatype: s.datatype.into(), shape: s.shape })
            .collect()
    };
    super::proto::ModelMetadataResponse {
        name: metadata.name,
        versions: metadata.versions,
        platform: metadata.platform.into(),
        inputs: tensors(metadata.inputs),
        outputs: tensors(metadata.outputs),
    }
}

/// The model configuration in the extension's messages.
pub fn config(config: crate::types::protocol::ModelConfig) -> super::proto::ModelConfig {
    use super::proto::{model_instance_group, DataType as Typed};
    let data_type = |name: &str| Typed::from_str_name(name).unwrap_or(Typed::TypeInvalid) as i32;
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    super::proto::ModelConfig {
        name: config.name,
        platform: config.platform.into(),
        backend: config.backend.into(),
        max_batch_size: count(config.max_batch_size),
        input: config
            .input
            .into_iter()
            .map(|t| super::proto::ModelInput { data_type: data_type(&t.data_type), name: t.name, dims: t.dims })
            .collect(),
        output: config
            .output
            .into_iter()
            .map(|t| super::proto::ModelOutput { data_type: data_type(&t.data_type), name: t.name, dims: t.dims })
            .collect(),
        instance_group: config
            .instance_group
            .into_iter()
            .map(|g| super::proto::ModelInstanceGroup {
                kind: model_instance_group::Kind::from_str_name(g.kind).unwrap_or(model_instance_group::Kind::Auto)
                    as i32,
                name: g.name,
                count: count(g.count),
                gpus: g.gpus.iter().map(|&g| count(g as usize)).collect(),
            })
            .collect(),
        dynamic_batching: config.dynamic_batching.map(|d| super::proto::ModelDynamicBatching {
            max_queue_delay_microseconds: d.max_queue_delay_microseconds,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: &str, datatype: &str, shape: Vec<i64>, contents: Option<InferTensorContents>) -> InferInputTensor {
        InferInputTensor {
            name: name.into(),
            datatype: datatype.into(),
            shape,
            parameters: Default::default(),
            contents,
        }
    }

    #[test]
    fn typed_and_raw_contents_become_the_same_bytes() {
        let typed = InferTensorContents { int_contents: vec![-1, 2], ..Default::default() };
        let from_typed = inputs(vec![input("x", "INT16", vec![2], Some(typed))], vec![]).unwrap();
        let raw = [(-1i16).to_le_bytes(), 2i16.to_le_bytes()].concat();
        let from_raw = inputs(vec![input("x", "INT16", vec![2], None)], vec![raw]).unwrap();
        assert_eq!(from_typed, from_raw);
        let out_of_range = InferTensorContents { uint_contents: vec![256], ..Default::default() };
        assert!(inputs(vec![input("x", "UINT8", vec![1], Some(out_of_range))], vec![]).is_err());
        assert!(inputs(vec![input("x", "FP32", vec![-1], None)], vec![]).is_err(), "a negative axis");
        assert!(inputs(vec![input("x", "FP32", vec![2], None)], vec![vec![0; 4]]).is_err(), "too few bytes");
        assert!(inputs(vec![input("x", "BYTES", vec![1], None)], vec![]).is_err());
        assert!(inputs(vec![input("x", "FP32", vec![1], None)], vec![vec![0; 4], vec![0; 4]]).is_err());
    }

    #[test]
    fn outputs_are_those_asked_for_in_their_order() {
        let t = |name: &str| Tensor::new(name.into(), DataType::Uint8, vec![1], vec![7]).unwrap();
        let asked = |name: &str| InferRequestedOutputTensor { name: name.into(), parameters: Default::default() };
        let (all, raw) = outputs(vec![t("a"), t("b")], &[]).unwrap();
        assert_eq!((all.len(), raw), (2, vec![vec![7], vec![7]]));
        let (some, _) = outputs(vec![t("a"), t("b")], &[asked("b"), asked("a")]).unwrap();
        assert_eq!(some.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(), ["b", "a"]);
        assert!(outputs(vec![t("a")], &[asked("c")]).is_err());
    }
}
