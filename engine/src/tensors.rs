//! Between the protocol's tensors (core: a datatype, a shape, bytes) and ONNX Runtime's values.
//! Values are built by copying the bytes into a tensor ONNX Runtime allocated, and read back the
//! same way, so one code path serves every datatype.

use ort::memory::Allocator;
use ort::session::{RunOptions, Session};
use ort::value::{DynTensor, DynTensorValueType, DynValue, TensorElementType, ValueType};
use sightline_core::tensor::element_count;
use sightline_core::{DataType, Tensor, TensorSignature, TensorSpec};

use crate::EngineError;

fn element_type(datatype: DataType) -> TensorElementType {
    match datatype {
        DataType::Bool => TensorElementType::Bool,
        DataType::Uint8 => TensorElementType::Uint8,
        DataType::Uint16 => TensorElementType::Uint16,
        DataType::Uint32 => TensorElementType::Uint32,
        DataType::Uint64 => TensorElementType::Uint64,
        DataType::Int8 => TensorElementType::Int8,
        DataType::Int16 => TensorElementType::Int16,
        DataType::Int32 => TensorElementType::Int32,
        DataType::Int64 => TensorElementType::Int64,
        DataType::Fp16 => TensorElementType::Float16,
        DataType::Fp32 => TensorElementType::Float32,
        DataType::Fp64 => TensorElementType::Float64,
    }
}

fn datatype(element: TensorElementType) -> Option<DataType> {
    DataType::ALL.into_iter().find(|&d| element_type(d) == element)
}

fn spec(name: &str, value_type: &ValueType) -> Result<TensorSpec, String> {
    let ValueType::Tensor { ty, shape, .. } = value_type else {
        return Err(format!("{name:?} is a {value_type}, not a tensor"));
    };
    let datatype = datatype(*ty).ok_or_else(|| format!("{name:?} has element type {ty:?}, which is not served"))?;
    Ok(TensorSpec { name: name.to_owned(), datatype, shape: shape.iter().map(|&d| d.max(-1)).collect() })
}

/// The session's inputs and outputs; an error names one whose type the protocol cannot carry.
pub fn signature_of(session: &Session) -> Result<TensorSignature, String> {
    Ok(TensorSignature {
        inputs: session.inputs().iter().map(|o| spec(o.name(), o.dtype())).collect::<Result<_, _>>()?,
        outputs: session.outputs().iter().map(|o| spec(o.name(), o.dtype())).collect::<Result<_, _>>()?,
    })
}

fn to_value(tensor: &Tensor) -> Result<DynTensor, EngineError> {
    let dims: Vec<i64> = tensor.shape.iter().map(|&d| d as i64).collect();
    let mut value = DynTensor::new(&Allocator::default(), element_type(tensor.datatype), dims)
        .map_err(|e| EngineError::Inference(format!("input {:?}: {e}", tensor.name)))?;
    if !tensor.data.is_empty() {
        let destination = value.data_ptr_mut().cast::<u8>();
        // SAFETY: ONNX Runtime allocated the tensor on the CPU for exactly `shape` elements of this
        // type, which is `data.len()` bytes (checked when the core tensor was built).
        unsafe { std::ptr::copy_nonoverlapping(tensor.data.as_ptr(), destination, tensor.data.len()) };
    }
    Ok(value)
}

fn to_tensor(name: &str, value: DynValue) -> Result<Tensor, EngineError> {
    let failed = |why: String| EngineError::Inference(format!("output {name:?}: {why}"));
    let value = value.downcast::<DynTensorValueType>().map_err(|e| failed(e.to_string()))?;
    let ValueType::Tensor { ty, shape, .. } = value.dtype() else { return Err(failed("not a tensor".into())) };
    let datatype = datatype(*ty).ok_or_else(|| failed(format!("element type {ty:?} is not served")))?;
    let shape: Vec<usize> = shape.iter().map(|&d| usize::try_from(d).unwrap_or(0)).collect();
    if !value.memory_info().is_cpu_accessible() {
        return Err(failed("the output is not in host memory".into()));
    }
    let bytes = element_count(&shape).and_then(|n| n.checked_mul(datatype.size())).unwrap_or(0);
    let mut data = vec![0u8; bytes];
    if bytes > 0 {
        // SAFETY: a CPU-accessible tensor of `shape` and this element type holds `bytes` bytes.
        unsafe { std::ptr::copy_nonoverlapping(value.data_ptr().cast::<u8>(), data.as_mut_ptr(), bytes) };
    }
    Tensor::new(name.to_owned(), datatype, shape, data).map_err(|e| failed(e.to_string()))
}

/// Runs the session on `inputs` (in its declared order, already checked against its signature);
/// every output, in its declared order.
pub fn run_tensors(
    session: &mut Session,
    inputs: &[Tensor],
    options: Option<&RunOptions>,
) -> Result<Vec<Tensor>, EngineError> {
    let values: Vec<(String, DynTensor)> =
        inputs.iter().map(|t| Ok((t.name.clone(), to_value(t)?))).collect::<Result<_, EngineError>>()?;
    let names: Vec<String> = session.outputs().iter().map(|o| o.name().to_owned()).collect();
    let mut outputs = match options {
        Some(options) => session.run_with_options(values, options),
        None => session.run(values),
    }
    .map_err(|e| EngineError::Inference(e.to_string()))?;
    names
        .iter()
        .map(|name| {
            let value = outputs.remove(name).ok_or_else(|| EngineError::Inference(format!("no output {name:?}")))?;
            to_tensor(name, value)
        })
        .collect()
}

/// Joins requests' inputs along their first axis, input by input; `None` when their other axes
/// differ (they then run one by one).
pub fn concat(requests: &[&[Tensor]]) -> Option<Vec<Tensor>> {
    let first = requests.first()?;
    // Each request's inputs must agree on their rows, or its outputs could not be split back.
    let rows = |r: &[Tensor]| r.first().and_then(|t| t.shape.first().copied());
    if requests.iter().any(|r| rows(r).is_none() || r.iter().any(|t| t.shape.first().copied() != rows(r))) {
        return None;
    }
    (0..first.len())
        .map(|i| {
            let parts: Vec<&Tensor> = requests.iter().map(|r| r.get(i)).collect::<Option<_>>()?;
            let head = parts[0];
            let same = parts.iter().all(|t| {
                t.datatype == head.datatype && t.shape.len() == head.shape.len() && t.shape[1..] == head.shape[1..]
            });
            if !same || head.shape.is_empty() {
                return None;
            }
            let mut shape = head.shape.clone();
            shape[0] = parts.iter().map(|t| t.shape[0]).sum();
            let mut data = Vec::with_capacity(parts.iter().map(|t| t.data.len()).sum());
            for part in &parts {
                data.extend_from_slice(&part.data);
            }
            Some(Tensor { name: head.name.clone(), datatype: head.datatype, shape, data })
        })
        .collect()
}

/// Splits joined outputs back into requests of `rows` first-axis rows each.
pub fn split_rows(outputs: Vec<Tensor>, rows: &[usize]) -> Result<Vec<Vec<Tensor>>, EngineError> {
    let total: usize = rows.iter().sum();
    let mut per_request: Vec<Vec<Tensor>> = vec![Vec::with_capacity(outputs.len()); rows.len()];
    for output in outputs {
        if output.shape.first() != Some(&total) {
            return Err(EngineError::Inference(format!(
                "a batch of {total} gave output {:?} of shape {:?}, not batched on its first axis",
                output.name, output.shape
            )));
        }
        let row_bytes = output.data.len() / total.max(1);
        let mut offset = 0;
        for (request, &n) in per_request.iter_mut().zip(rows) {
            let mut shape = output.shape.clone();
            shape[0] = n;
            let data = output.data[offset..offset + n * row_bytes].to_vec();
            offset += n * row_bytes;
            request.push(Tensor { name: output.name.clone(), datatype: output.datatype, shape, data });
        }
    }
    Ok(per_request)
}

/// Inputs that a session's load-time test runs: zeros, every symbolic axis set to `batch` on the
/// first axis and 1 elsewhere.
pub fn zero_inputs(signature: &TensorSignature, batch: usize) -> Vec<Tensor> {
    signature
        .inputs
        .iter()
        .map(|spec| {
            let shape: Vec<usize> = spec
                .shape
                .iter()
                .enumerate()
                .map(|(axis, &d)| usize::try_from(d).unwrap_or(if axis == 0 { batch } else { 1 }))
                .collect();
            let bytes = element_count(&shape).unwrap_or(0) * spec.datatype.size();
            Tensor { name: spec.name.clone(), datatype: spec.datatype, shape, data: vec![0; bytes] }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, shape: Vec<usize>, fill: u8) -> Tensor {
        let n = element_count(&shape).unwrap() * 4;
        Tensor { name: name.into(), datatype: DataType::Int32, shape, data: vec![fill; n] }
    }

    #[test]
    fn requests_join_and_split_on_the_first_axis() {
        let a = [t("x", vec![1, 2], 1)];
        let b = [t("x", vec![2, 2], 2)];
        let joined = concat(&[&a, &b]).unwrap();
        assert_eq!(joined[0].shape, vec![3, 2]);
        let parts = split_rows(joined, &[1, 2]).unwrap();
        assert_eq!(parts[0][0], a[0]);
        assert_eq!(parts[1][0], b[0]);
        assert!(concat(&[&a, &[t("x", vec![1, 3], 0)]]).is_none());
        assert!(split_rows(vec![t("y", vec![2, 2], 0)], &[1, 2]).is_err());
    }

    #[test]
    fn every_datatype_has_an_onnx_element_type() {
        for d in DataType::ALL {
            assert_eq!(datatype(element_type(d)), Some(d));
        }
    }
}
