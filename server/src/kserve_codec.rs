//! The Open Inference Protocol's REST bodies (KServe v2), with Triton's binary tensor data
//! extension: a JSON header, then the raw bytes of each input that names a `binary_data_size`, in
//! input order. Pure functions of the body, so they are fuzzed directly (`fuzz/`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sightline_core::tensor::element_count;
use sightline_core::{DataType, Tensor};
use utoipa::ToSchema;

/// Why a body was refused: the protocol answers 400 with `{"error": ...}`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct CodecError(pub String);

fn refuse<T>(message: String) -> Result<T, CodecError> {
    Err(CodecError(message))
}

/// One input tensor of a request (`data` is absent when the bytes follow the header).
#[derive(Debug, Deserialize, ToSchema)]
pub struct RequestInput {
    /// The model input this tensor feeds, as `GET /v2/models/{name}` lists it.
    name: String,
    /// The tensor's dimensions; they must hold exactly the values (or bytes) sent.
    shape: Vec<u64>,
    /// `BOOL`, `UINT8`..`UINT64`, `INT8`..`INT64`, `FP16`, `FP32`, `FP64`.
    datatype: String,
    /// `binary_data_size`: bytes of this input after the JSON header.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    parameters: Option<Map<String, Value>>,
    /// Row-major values, flat or nested; booleans for `BOOL`.
    #[schema(value_type = Option<Vec<Object>>)]
    data: Option<Value>,
}

/// An output the client asks for; `binary_data` asks for its bytes after the JSON header.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RequestOutput {
    /// A model output, as `GET /v2/models/{name}` lists it.
    name: String,
    /// `binary_data: true` answers this output's bytes after the JSON header.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    parameters: Option<Map<String, Value>>,
}

/// `POST /v2/models/{name}/infer`'s JSON (the header, in the binary extension).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "42",
    "inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [0.1, 0.2, 0.3]}],
    "outputs": [{"name": "output"}]
}))]
pub struct InferenceRequest {
    /// Echoed in the answer's `id`.
    id: Option<String>,
    /// `binary_data_output: true` answers every output's bytes after the JSON header.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    parameters: Option<Map<String, Value>>,
    /// At least one tensor: the model's inputs, each with its values in `data` or its bytes after
    /// the JSON header.
    inputs: Vec<RequestInput>,
    /// The outputs to answer, in this order; every output of the model when absent.
    outputs: Option<Vec<RequestOutput>>,
}

/// A parsed request: its tensors and which outputs to return how.
#[derive(Debug)]
pub struct Request {
    pub id: Option<String>,
    pub inputs: Vec<Tensor>,
    /// `None`: every output.
    pub outputs: Option<Vec<(String, bool)>>,
    pub binary_by_default: bool,
}

fn flag(parameters: &Option<Map<String, Value>>, key: &str) -> Result<Option<bool>, CodecError> {
    match parameters.as_ref().and_then(|p| p.get(key)) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => refuse(format!("parameter {key:?} must be a boolean, got {other}")),
    }
}

fn binary_size(input: &RequestInput) -> Result<Option<usize>, CodecError> {
    match input.parameters.as_ref().and_then(|p| p.get("binary_data_size")) {
        None => Ok(None),
        Some(v) => match v.as_u64().and_then(|n| usize::try_from(n).ok()) {
            Some(n) => Ok(Some(n)),
            None => refuse(format!("input {:?}: binary_data_size must be a byte count, got {v}", input.name)),
        },
    }
}

/// Parses a body; `header_length` is the `Inference-Header-Content-Length` header, present when
/// binary data follows the JSON.
pub fn parse_request(body: &[u8], header_length: Option<usize>) -> Result<Request, CodecError> {
    let header_length = header_length.unwrap_or(body.len());
    if header_length > body.len() {
        return refuse(format!(
            "Inference-Header-Content-Length is {header_length} but the body has {} bytes",
            body.len()
        ));
    }
    let (header, mut binary) = body.split_at(header_length);
    let request: InferenceRequest =
        serde_json::from_slice(header).map_err(|e| CodecError(format!("malformed inference request: {e}")))?;
    if request.inputs.is_empty() {
        return refuse("the request has no inputs".into());
    }
    let mut inputs = Vec::with_capacity(request.inputs.len());
    for input in &request.inputs {
        let datatype = DataType::parse(&input.datatype).ok_or_else(|| {
            CodecError(format!("input {:?}: datatype {:?} is not supported", input.name, input.datatype))
        })?;
        let shape: Vec<usize> = input
            .shape
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| CodecError(format!("input {:?}: shape too large", input.name))))
            .collect::<Result<_, _>>()?;
        let elements = element_count(&shape)
            .filter(|n| n.checked_mul(datatype.size()).is_some())
            .ok_or_else(|| CodecError(format!("input {:?}: shape {shape:?} is too large", input.name)))?;
        let data = match (binary_size(input)?, &input.data) {
            (Some(_), Some(_)) => return refuse(format!("input {:?} has both data and binary_data_size", input.name)),
            (Some(size), None) => {
                if size > binary.len() {
                    return refuse(format!(
                        "input {:?}: binary_data_size {size} but only {} bytes are left",
                        input.name,
                        binary.len()
                    ));
                }
                let (mine, rest) = binary.split_at(size);
                binary = rest;
                mine.to_vec()
            }
            (None, Some(values)) => json_to_bytes(&input.name, datatype, values, elements)?,
            (None, None) => return refuse(format!("input {:?} has no data", input.name)),
        };
        let tensor = Tensor::new(input.name.clone(), datatype, shape, data).map_err(|e| CodecError(e.to_string()))?;
        inputs.push(tensor);
    }
    if !binary.is_empty() {
        return refuse(format!("{} bytes of binary data follow the inputs that no input claims", binary.len()));
    }
    let outputs = match &request.outputs {
        None => None,
        Some(list) => Some(
            list.iter()
                .map(|o| Ok((o.name.clone(), flag(&o.parameters, "binary_data")?.unwrap_or(false))))
                .collect::<Result<_, CodecError>>()?,
        ),
    };
    let binary_by_default = flag(&request.parameters, "binary_data_output")?.unwrap_or(false);
    Ok(Request { id: request.id, inputs, outputs, binary_by_default })
}

/// Flattens nested JSON arrays; more than `limit` values is refused before they are all read.
fn flatten<'v>(name: &str, value: &'v Value, limit: usize, out: &mut Vec<&'v Value>) -> Result<(), CodecError> {
    match value {
        Value::Array(items) => items.iter().try_for_each(|item| flatten(name, item, limit, out)),
        scalar if out.len() < limit => {
            out.push(scalar);
            Ok(())
        }
        _ => refuse(format!("input {name:?} has more values than its shape holds ({limit})")),
    }
}

fn json_to_bytes(name: &str, datatype: DataType, values: &Value, elements: usize) -> Result<Vec<u8>, CodecError> {
    let mut flat = Vec::new();
    flatten(name, values, elements, &mut flat)?;
    if flat.len() != elements {
        return refuse(format!("input {name:?} has {} values, its shape holds {elements}", flat.len()));
    }
    let mut bytes = Vec::with_capacity(elements * datatype.size());
    for value in flat {
        let bad = || CodecError(format!("input {name:?}: {value} is not a {datatype} value"));
        let int = || value.as_i64().ok_or_else(bad);
        let uint = || value.as_u64().ok_or_else(bad);
        let float = || value.as_f64().ok_or_else(bad);
        match datatype {
            DataType::Bool => bytes.push(u8::from(value.as_bool().ok_or_else(bad)?)),
            DataType::Uint8 => bytes.push(u8::try_from(uint()?).map_err(|_| bad())?),
            DataType::Uint16 => bytes.extend(u16::try_from(uint()?).map_err(|_| bad())?.to_le_bytes()),
            DataType::Uint32 => bytes.extend(u32::try_from(uint()?).map_err(|_| bad())?.to_le_bytes()),
            DataType::Uint64 => bytes.extend(uint()?.to_le_bytes()),
            DataType::Int8 => bytes.extend(i8::try_from(int()?).map_err(|_| bad())?.to_le_bytes()),
            DataType::Int16 => bytes.extend(i16::try_from(int()?).map_err(|_| bad())?.to_le_bytes()),
            DataType::Int32 => bytes.extend(i32::try_from(int()?).map_err(|_| bad())?.to_le_bytes()),
            DataType::Int64 => bytes.extend(int()?.to_le_bytes()),
            DataType::Fp16 => bytes.extend(half::f16::from_f64(float()?).to_le_bytes()),
            DataType::Fp32 => bytes.extend((float()? as f32).to_le_bytes()),
            DataType::Fp64 => bytes.extend(float()?.to_le_bytes()),
        }
    }
    Ok(bytes)
}

fn bytes_to_json(tensor: &Tensor) -> Vec<Value> {
    let size = tensor.datatype.size();
    tensor
        .data
        .chunks_exact(size)
        .map(|c| {
            let mut b8 = [0u8; 8];
            b8[..size].copy_from_slice(c);
            match tensor.datatype {
                DataType::Bool => Value::Bool(c[0] != 0),
                DataType::Uint8 | DataType::Uint16 | DataType::Uint32 | DataType::Uint64 => {
                    Value::from(u64::from_le_bytes(b8))
                }
                DataType::Int8 => Value::from(i8::from_le_bytes([c[0]])),
                DataType::Int16 => Value::from(i16::from_le_bytes([c[0], c[1]])),
                DataType::Int32 => Value::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                DataType::Int64 => Value::from(i64::from_le_bytes(b8)),
                DataType::Fp16 => float(half::f16::from_le_bytes([c[0], c[1]]).to_f64()),
                DataType::Fp32 => float(f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]]))),
                DataType::Fp64 => float(f64::from_le_bytes(b8)),
            }
        })
        .collect()
}

/// JSON has no NaN or infinity; they are sent as null (use binary data to keep them).
fn float(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

/// One output of a response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResponseOutput {
    name: String,
    datatype: &'static str,
    shape: Vec<usize>,
    /// `binary_data_size` when the bytes follow the JSON header.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    parameters: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    data: Option<Vec<Value>>,
}

/// `POST /v2/models/{name}/infer`'s answer (its JSON header in the binary extension).
#[derive(Debug, Serialize, ToSchema)]
pub struct InferenceResponse {
    model_name: String,
    model_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    outputs: Vec<ResponseOutput>,
}

/// An encoded answer: the body, and the length of its JSON header when binary data follows it.
pub struct Encoded {
    pub body: Vec<u8>,
    pub header_length: Option<usize>,
}

/// The outputs the request asked for (all when it named none), in its order, as JSON values or
/// binary after the header; an output the model does not have is refused.
pub fn encode_response(
    model_name: &str,
    model_version: &str,
    request: &Request,
    outputs: Vec<Tensor>,
) -> Result<Encoded, CodecError> {
    let chosen: Vec<(Tensor, bool)> = match &request.outputs {
        None => outputs.into_iter().map(|t| (t, request.binary_by_default)).collect(),
        Some(wanted) => {
            let mut outputs: Vec<Option<Tensor>> = outputs.into_iter().map(Some).collect();
            wanted
                .iter()
                .map(|(name, binary)| {
                    let slot = outputs.iter_mut().find(|t| t.as_ref().is_some_and(|t| &t.name == name));
                    match slot.and_then(Option::take) {
                        Some(t) => Ok((t, *binary || request.binary_by_default)),
                        None => refuse(format!("the model has no output {name:?} (or it is asked for twice)")),
                    }
                })
                .collect::<Result<_, _>>()?
        }
    };
    let mut binary = Vec::new();
    let described = chosen
        .into_iter()
        .map(|(tensor, as_binary)| {
            let (parameters, data) = if as_binary {
                let mut p = Map::new();
                p.insert("binary_data_size".into(), Value::from(tensor.data.len()));
                binary.extend_from_slice(&tensor.data);
                (Some(p), None)
            } else {
                (None, Some(bytes_to_json(&tensor)))
            };
            ResponseOutput {
                name: tensor.name,
                datatype: tensor.datatype.as_str(),
                shape: tensor.shape,
                parameters,
                data,
            }
        })
        .collect();
    let response = InferenceResponse {
        model_name: model_name.to_owned(),
        model_version: model_version.to_owned(),
        id: request.id.clone(),
        outputs: described,
    };
    // Any binary output, even an empty one, makes the answer a header followed by bytes.
    let any_binary = response.outputs.iter().any(|o| o.parameters.is_some());
    let mut body = serde_json::to_vec(&response).map_err(|e| CodecError(format!("cannot encode the response: {e}")))?;
    let header_length = any_binary.then_some(body.len());
    body.extend_from_slice(&binary);
    Ok(Encoded { body, header_length })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_inputs_are_read_in_every_datatype() {
        let body = br#"{"inputs":[
            {"name":"f","shape":[2],"datatype":"FP32","data":[1.5,-2]},
            {"name":"h","shape":[1,2],"datatype":"FP16","data":[[0.5,2]]},
            {"name":"l","shape":[1],"datatype":"INT64","data":[-9007199254740993]},
            {"name":"b","shape":[2],"datatype":"BOOL","data":[true,false]},
            {"name":"u","shape":[1],"datatype":"UINT8","data":[255]}]}"#;
        let request = parse_request(body, None).unwrap();
        let data: Vec<&[u8]> = request.inputs.iter().map(|t| t.data.as_slice()).collect();
        assert_eq!(data[0], [1.5f32.to_le_bytes(), (-2f32).to_le_bytes()].concat());
        assert_eq!(data[1], [0x00, 0x38, 0x00, 0x40]);
        assert_eq!(data[2], (-9007199254740993i64).to_le_bytes());
        assert_eq!(data[3], [1, 0]);
        assert_eq!(data[4], [255]);
        assert!(request.outputs.is_none() && !request.binary_by_default);
    }

    #[test]
    fn binary_inputs_follow_the_header() {
        let header = br#"{"inputs":[{"name":"a","shape":[2],"datatype":"INT32","parameters":{"binary_data_size":8}},
            {"name":"b","shape":[1],"datatype":"UINT8","parameters":{"binary_data_size":1}}],
            "outputs":[{"name":"y","parameters":{"binary_data":true}}]}"#;
        let mut body = header.to_vec();
        body.extend([1, 0, 0, 0, 2, 0, 0, 0, 7]);
        let request = parse_request(&body, Some(header.len())).unwrap();
        assert_eq!(request.inputs[0].data, [1, 0, 0, 0, 2, 0, 0, 0]);
        assert_eq!(request.inputs[1].data, [7]);
        assert_eq!(request.outputs, Some(vec![("y".to_owned(), true)]));
        body.push(0);
        assert!(parse_request(&body, Some(header.len())).is_err(), "unclaimed bytes");
        assert!(parse_request(&body[..body.len() - 3], Some(header.len())).is_err(), "short data");
        assert!(parse_request(&body, Some(body.len() + 1)).is_err(), "header longer than the body");
    }

    #[test]
    fn mismatches_are_refused() {
        for body in [
            r#"{"inputs":[]}"#,
            r#"{"inputs":[{"name":"a","shape":[3],"datatype":"FP32","data":[1,2]}]}"#,
            r#"{"inputs":[{"name":"a","shape":[1],"datatype":"FP32","data":[1,2]}]}"#,
            r#"{"inputs":[{"name":"a","shape":[1],"datatype":"BYTES","data":["x"]}]}"#,
            r#"{"inputs":[{"name":"a","shape":[1],"datatype":"UINT8","data":[256]}]}"#,
            r#"{"inputs":[{"name":"a","shape":[1],"datatype":"INT32","data":[1.5]}]}"#,
            r#"{"inputs":[{"name":"a","shape":[1],"datatype":"BOOL","data":[1]}]}"#,
            r#"{"inputs":[{"name":"a","shape":[18446744073709551615,2],"datatype":"FP32","data":[]}]}"#,
            r#"{"inputs":[{"name":"a","shape":[1],"datatype":"FP32"}]}"#,
            r#"{"inputs":[{"name":"a","shape":[1],"datatype":"FP32","data":[1]}],"parameters":{"binary_data_output":1}}"#,
            r#"not json"#,
        ] {
            assert!(parse_request(body.as_bytes(), None).is_err(), "{body}");
        }
    }

    #[test]
    fn responses_mix_json_and_binary_outputs() {
        let request = Request {
            id: Some("7".into()),
            inputs: vec![],
            outputs: Some(vec![("b".into(), true), ("a".into(), false)]),
            binary_by_default: false,
        };
        let a =
            Tensor::new("a".into(), DataType::Fp16, vec![1], half::f16::from_f32(1.5).to_le_bytes().to_vec()).unwrap();
        let b = Tensor::new("b".into(), DataType::Int32, vec![1], 5i32.to_le_bytes().to_vec()).unwrap();
        let encoded = encode_response("m", "1", &request, vec![a, b]).unwrap();
        let length = encoded.header_length.unwrap();
        let header: Value = serde_json::from_slice(&encoded.body[..length]).unwrap();
        assert_eq!(header["outputs"][0]["parameters"]["binary_data_size"], 4);
        assert_eq!(header["outputs"][1]["data"], serde_json::json!([1.5]));
        assert_eq!(header["id"], "7");
        assert_eq!(&encoded.body[length..], 5i32.to_le_bytes());
        let missing = Request { outputs: Some(vec![("zzz".into(), false)]), ..request };
        assert!(encode_response("m", "1", &missing, vec![]).is_err());
    }
}
