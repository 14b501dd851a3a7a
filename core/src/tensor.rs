//! Tensors as the Open Inference Protocol (KServe v2) carries them: a name, a datatype, a shape and
//! row-major little-endian bytes. The bytes stay opaque until a session reads them, so a tensor
//! crosses the manager without a conversion per element.

use std::fmt;

use crate::CoreError;

/// The protocol's element types that ONNX Runtime also has (`BYTES`, strings, is not served).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    Bool,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Int8,
    Int16,
    Int32,
    Int64,
    Fp16,
    Fp32,
    Fp64,
}

impl DataType {
    pub const ALL: [DataType; 12] = [
        DataType::Bool,
        DataType::Uint8,
        DataType::Uint16,
        DataType::Uint32,
        DataType::Uint64,
        DataType::Int8,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::Fp16,
        DataType::Fp32,
        DataType::Fp64,
    ];

    /// The protocol's name, e.g. `FP32`.
    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Bool => "BOOL",
            DataType::Uint8 => "UINT8",
            DataType::Uint16 => "UINT16",
            DataType::Uint32 => "UINT32",
            DataType::Uint64 => "UINT64",
            DataType::Int8 => "INT8",
            DataType::Int16 => "INT16",
            DataType::Int32 => "INT32",
            DataType::Int64 => "INT64",
            DataType::Fp16 => "FP16",
            DataType::Fp32 => "FP32",
            DataType::Fp64 => "FP64",
        }
    }

    pub fn parse(name: &str) -> Option<DataType> {
        DataType::ALL.into_iter().find(|d| d.as_str() == name)
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DataType::Bool | DataType::Uint8 | DataType::Int8 => 1,
            DataType::Uint16 | DataType::Int16 | DataType::Fp16 => 2,
            DataType::Uint32 | DataType::Int32 | DataType::Fp32 => 4,
            DataType::Uint64 | DataType::Int64 | DataType::Fp64 => 8,
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Elements of `shape`, or `None` when the product overflows (a hostile shape).
pub fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// One named tensor; `data` holds exactly `shape`'s elements of `datatype`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub datatype: DataType,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl Tensor {
    /// Refuses data whose length is not what the shape and datatype make.
    pub fn new(name: String, datatype: DataType, shape: Vec<usize>, data: Vec<u8>) -> Result<Tensor, CoreError> {
        if shape.iter().any(|&d| i64::try_from(d).is_err()) {
            return Err(CoreError::InvalidTensor(format!("tensor {name:?}: shape {shape:?} has an axis beyond 2^63")));
        }
        let expected = element_count(&shape).and_then(|n| n.checked_mul(datatype.size()));
        if expected != Some(data.len()) {
            return Err(CoreError::InvalidTensor(format!(
                "tensor {name:?}: shape {shape:?} of {datatype} needs {} bytes, got {}",
                expected.map_or_else(|| "too many".to_owned(), |n| n.to_string()),
                data.len()
            )));
        }
        if datatype == DataType::Bool && data.iter().any(|&b| b > 1) {
            return Err(CoreError::InvalidTensor(format!("tensor {name:?}: BOOL bytes must be 0 or 1")));
        }
        Ok(Tensor { name, datatype, shape, data })
    }

    pub fn elements(&self) -> usize {
        self.data.len() / self.datatype.size()
    }
}

/// A model input or output as the model declares it; `-1` marks a symbolic axis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub datatype: DataType,
    pub shape: Vec<i64>,
}

impl TensorSpec {
    /// Whether `shape` fits this spec: same rank, and equal on every fixed axis.
    fn accepts(&self, shape: &[usize]) -> bool {
        shape.len() == self.shape.len()
            && self.shape.iter().zip(shape).all(|(&want, &got)| want < 0 || usize::try_from(want) == Ok(got))
    }
}

/// What a model takes and gives as tensors (the protocol's model metadata).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TensorSignature {
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
}

impl TensorSignature {
    /// Orders `inputs` as the model declares them, refusing a missing, unknown or repeated input,
    /// a wrong datatype, or a shape the model does not accept: the protocol's 400s.
    pub fn arrange(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, CoreError> {
        let invalid = |m: String| Err(CoreError::InvalidTensor(m));
        if let Some(unknown) = inputs.iter().find(|t| !self.inputs.iter().any(|s| s.name == t.name)) {
            let expected: Vec<&str> = self.inputs.iter().map(|s| s.name.as_str()).collect();
            return invalid(format!("unexpected input {:?}; the model's inputs are {expected:?}", unknown.name));
        }
        let mut slots: Vec<Option<Tensor>> = vec![None; self.inputs.len()];
        for tensor in inputs {
            let Some(index) = self.inputs.iter().position(|s| s.name == tensor.name) else { continue };
            if slots[index].is_some() {
                return invalid(format!("input {:?} is given twice", tensor.name));
            }
            let spec = &self.inputs[index];
            if spec.datatype != tensor.datatype {
                return invalid(format!(
                    "input {:?}: datatype {} given, the model expects {}",
                    spec.name, tensor.datatype, spec.datatype
                ));
            }
            if !spec.accepts(&tensor.shape) {
                return invalid(format!(
                    "input {:?}: shape {:?} given, the model expects {:?} (-1: any size)",
                    spec.name, tensor.shape, spec.shape
                ));
            }
            slots[index] = Some(tensor);
        }
        slots
            .into_iter()
            .zip(&self.inputs)
            .map(|(slot, spec)| {
                slot.ok_or_else(|| CoreError::InvalidTensor(format!("input {:?} is missing", spec.name)))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp32(name: &str, shape: Vec<usize>) -> Tensor {
        let n = element_count(&shape).unwrap();
        Tensor::new(name.into(), DataType::Fp32, shape, vec![0; n * 4]).unwrap()
    }

    fn signature() -> TensorSignature {
        TensorSignature {
            inputs: vec![
                TensorSpec { name: "images".into(), datatype: DataType::Fp32, shape: vec![-1, 3, 4, 4] },
                TensorSpec { name: "scale".into(), datatype: DataType::Fp32, shape: vec![1] },
            ],
            outputs: vec![],
        }
    }

    #[test]
    fn names_round_trip_and_sizes_are_the_protocols() {
        for d in DataType::ALL {
            assert_eq!(DataType::parse(d.as_str()), Some(d));
        }
        assert_eq!(DataType::parse("BYTES"), None);
        assert_eq!(DataType::Fp16.size(), 2);
        assert_eq!(DataType::Int64.size(), 8);
    }

    #[test]
    fn data_must_match_the_shape() {
        assert!(Tensor::new("x".into(), DataType::Int32, vec![2, 3], vec![0; 24]).is_ok());
        let short = Tensor::new("x".into(), DataType::Int32, vec![2, 3], vec![0; 20]).unwrap_err();
        assert_eq!(short.kind(), "invalid_tensor");
        assert!(Tensor::new("x".into(), DataType::Uint8, vec![usize::MAX, 2], vec![]).is_err());
        assert!(Tensor::new("b".into(), DataType::Bool, vec![2], vec![1, 2]).is_err());
        assert!(
            Tensor::new("z".into(), DataType::Fp32, vec![0, usize::MAX], vec![]).is_err(),
            "empty, but no axis fits ONNX Runtime"
        );
    }

    #[test]
    fn inputs_are_ordered_and_checked() {
        let arranged = signature().arrange(vec![fp32("scale", vec![1]), fp32("images", vec![2, 3, 4, 4])]).unwrap();
        assert_eq!(arranged.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["images", "scale"]);
        for bad in [
            vec![fp32("images", vec![1, 3, 4, 4])],
            vec![fp32("images", vec![1, 3, 4, 5]), fp32("scale", vec![1])],
            vec![fp32("images", vec![1, 3, 4]), fp32("scale", vec![1])],
            vec![fp32("images", vec![1, 3, 4, 4]), fp32("scale", vec![1]), fp32("other", vec![1])],
            vec![fp32("images", vec![1, 3, 4, 4]), fp32("images", vec![1, 3, 4, 4]), fp32("scale", vec![1])],
        ] {
            assert_eq!(signature().arrange(bad).unwrap_err().kind(), "invalid_tensor");
        }
        let int = Tensor::new("scale".into(), DataType::Int32, vec![1], vec![0; 4]).unwrap();
        assert!(signature().arrange(vec![fp32("images", vec![1, 3, 4, 4]), int]).is_err());
    }
}
