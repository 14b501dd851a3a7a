//! Exact rewrites of a model's graph that ONNX Runtime's own optimiser does not make, each one
//! giving bit-identical outputs on ONNX Runtime's CPU kernels (tests/graph_rewrite.rs checks every
//! fixture family it changes), applied to CPU sessions when `ORT_GRAPH_REWRITES` is on:
//!
//! - [`softmax`]: a Softmax over a middle axis, computed on the last axis between two Transposes;
//! - [`split_conv`]: a Conv whose output channels a Split divides, made one Conv per part.

mod softmax;
mod split_conv;

use std::collections::HashSet;

use crate::onnx_wire::{fields, ints, put_bytes, Field};

/// Changes whenever a rewrite changes: saved optimised graphs are keyed by it.
pub const REWRITES_VERSION: &str = "rw2";

pub use softmax::softmax_on_last_axis;
pub use split_conv::split_convs;

/// The rewritten model and how many places each rewrite changed.
#[derive(Debug)]
pub struct Rewritten {
    pub model: Vec<u8>,
    pub softmaxes: usize,
    pub split_convs: usize,
}

/// `model` (an ONNX ModelProto) with every rewrite applied. `None` when none applies, when the
/// model keeps data in external files (a model built from memory cannot find them) or when the
/// bytes are not a well-formed model: ONNX Runtime then loads the file as it is and reports its
/// own errors.
pub fn rewrite_graph(model: &[u8]) -> Option<Rewritten> {
    if has_external_data(&fields(model)?)? {
        return None;
    }
    let softmaxes = softmax::on_last_axis(model);
    let current = softmaxes.as_ref().map_or(model, |(m, _)| m.as_slice());
    let splits = split_conv::split(current);
    let (softmax_count, split_count) = (softmaxes.as_ref().map_or(0, |s| s.1), splits.as_ref().map_or(0, |s| s.1));
    let model = splits.map(|s| s.0).or(softmaxes.map(|s| s.0))?;
    Some(Rewritten { model, softmaxes: softmax_count, split_convs: split_count })
}

// Field numbers of onnx.proto that the rewrite reads or writes.
const MODEL_GRAPH: u32 = 7;
const MODEL_OPSET_IMPORT: u32 = 8;
const MODEL_FUNCTIONS: u32 = 25;
const FUNCTION_NODE: u32 = 7;
const OPSET_DOMAIN: u32 = 1;
const OPSET_VERSION: u32 = 2;
const GRAPH_NODE: u32 = 1;
const GRAPH_INITIALIZER: u32 = 5;
const GRAPH_SPARSE_INITIALIZER: u32 = 15;
const GRAPH_INPUT: u32 = 11;
const GRAPH_OUTPUT: u32 = 12;
const NODE_INPUT: u32 = 1;
const NODE_OUTPUT: u32 = 2;
const NODE_NAME: u32 = 3;
const NODE_OP_TYPE: u32 = 4;
const NODE_ATTRIBUTE: u32 = 5;
const NODE_DOMAIN: u32 = 7;
const ATTRIBUTE_NAME: u32 = 1;
const ATTRIBUTE_I: u32 = 3;
const ATTRIBUTE_T: u32 = 5;
const ATTRIBUTE_G: u32 = 6;
const ATTRIBUTE_INTS: u32 = 8;
const ATTRIBUTE_TENSORS: u32 = 10;
const ATTRIBUTE_GRAPHS: u32 = 11;
const ATTRIBUTE_SPARSE_TENSOR: u32 = 22;
const ATTRIBUTE_SPARSE_TENSORS: u32 = 23;
const ATTRIBUTE_TYPE: u32 = 20;
const ATTRIBUTE_REF_ATTR_NAME: u32 = 21;
const ATTRIBUTE_TYPE_INT: i64 = 2;
const ATTRIBUTE_TYPE_INTS: i64 = 7;
const TENSOR_NAME: u32 = 8;
const TENSOR_EXTERNAL_DATA: u32 = 13;
const TENSOR_DATA_LOCATION: u32 = 14;
const TENSOR_EXTERNAL: i64 = 1;
const VALUE_INFO_NAME: u32 = 1;
const SPARSE_VALUES: u32 = 1;
const SPARSE_INDICES: u32 = 2;
/// Deeper nesting of graphs in attributes than any real model has: such bytes are left alone.
const MAX_GRAPH_DEPTH: usize = 32;

/// Whether any tensor of the model keeps its data in an external file: an initializer, a sparse
/// one, a Constant's or any attribute's tensor, at any depth of subgraphs (If, Loop, Scan) and in
/// the model's functions. `None` for malformed or absurdly nested bytes.
fn has_external_data(model: &[Field<'_>]) -> Option<bool> {
    for field in model {
        let external = match field.number {
            MODEL_GRAPH => graph_has_external_data(field.bytes()?, 0)?,
            MODEL_FUNCTIONS => fields(field.bytes()?)?
                .iter()
                .filter(|f| f.number == FUNCTION_NODE)
                .map(|node| node_has_external_data(node.bytes()?, 0))
                .collect::<Option<Vec<bool>>>()?
                .contains(&true),
            _ => false,
        };
        if external {
            return Some(true);
        }
    }
    Some(false)
}

fn graph_has_external_data(graph: &[u8], depth: usize) -> Option<bool> {
    if depth > MAX_GRAPH_DEPTH {
        return None;
    }
    for field in fields(graph)? {
        let external = match field.number {
            GRAPH_INITIALIZER => tensor_is_external(field.bytes()?)?,
            GRAPH_SPARSE_INITIALIZER => sparse_tensor_is_external(field.bytes()?)?,
            GRAPH_NODE => node_has_external_data(field.bytes()?, depth)?,
            _ => false,
        };
        if external {
            return Some(true);
        }
    }
    Some(false)
}

fn node_has_external_data(node: &[u8], depth: usize) -> Option<bool> {
    for attribute in fields(node)?.iter().filter(|f| f.number == NODE_ATTRIBUTE) {
        for field in fields(attribute.bytes()?)? {
            let external = match field.number {
                ATTRIBUTE_T | ATTRIBUTE_TENSORS => tensor_is_external(field.bytes()?)?,
                ATTRIBUTE_SPARSE_TENSOR | ATTRIBUTE_SPARSE_TENSORS => sparse_tensor_is_external(field.bytes()?)?,
                ATTRIBUTE_G | ATTRIBUTE_GRAPHS => graph_has_external_data(field.bytes()?, depth + 1)?,
                _ => false,
            };
            if external {
                return Some(true);
            }
        }
    }
    Some(false)
}

fn tensor_is_external(tensor: &[u8]) -> Option<bool> {
    Some(fields(tensor)?.iter().any(|f| {
        (f.number == TENSOR_DATA_LOCATION && f.int() == Some(TENSOR_EXTERNAL)) || f.number == TENSOR_EXTERNAL_DATA
    }))
}

fn sparse_tensor_is_external(sparse: &[u8]) -> Option<bool> {
    for part in fields(sparse)?.iter().filter(|f| matches!(f.number, SPARSE_VALUES | SPARSE_INDICES)) {
        if tensor_is_external(part.bytes()?)? {
            return Some(true);
        }
    }
    Some(false)
}

/// The model's graph as its fields, and its nodes as read.
fn read_graph<'a>(model: &[Field<'a>]) -> Option<(Vec<Field<'a>>, Vec<Node<'a>>)> {
    let graph = fields(model.iter().find(|f| f.number == MODEL_GRAPH)?.bytes()?)?;
    let nodes =
        graph.iter().filter(|f| f.number == GRAPH_NODE).map(|f| Node::read(f.bytes()?)).collect::<Option<Vec<_>>>()?;
    Some((graph, nodes))
}

/// The model with `graph` (an encoded GraphProto) for its graph, every other field byte for byte.
fn with_graph(model: &[Field<'_>], graph: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(model.iter().map(|f| f.raw.len()).sum::<usize>() + graph.len());
    for field in model {
        if field.number == MODEL_GRAPH {
            put_bytes(&mut out, MODEL_GRAPH, graph);
        } else {
            out.extend_from_slice(field.raw);
        }
    }
    out
}

fn normalized(axis: i64, rank: usize) -> Option<usize> {
    let rank = i64::try_from(rank).ok()?;
    let axis = if axis < 0 { axis + rank } else { axis };
    usize::try_from(axis).ok().filter(|&a| (a as i64) < rank)
}

/// A node as read: the fields a rewrite looks at, and the fields themselves for re-encoding.
struct Node<'a> {
    fields: Vec<Field<'a>>,
    op_type: &'a str,
    domain: &'a str,
    name: &'a str,
    inputs: Vec<&'a str>,
    outputs: Vec<&'a str>,
    attributes: Vec<Vec<Field<'a>>>,
}

impl<'a> Node<'a> {
    fn read(bytes: &'a [u8]) -> Option<Self> {
        let fields = fields(bytes)?;
        let text = |number| fields.iter().find(|f| f.number == number).map_or(Some(""), Field::text);
        let texts = |number| fields.iter().filter(|f| f.number == number).map(Field::text).collect::<Option<Vec<_>>>();
        let attributes = fields
            .iter()
            .filter(|f| f.number == NODE_ATTRIBUTE)
            .map(|f| crate::onnx_wire::fields(f.bytes()?))
            .collect::<Option<Vec<_>>>()?;
        Some(Node {
            op_type: text(NODE_OP_TYPE)?,
            domain: text(NODE_DOMAIN)?,
            name: text(NODE_NAME)?,
            inputs: texts(NODE_INPUT)?,
            outputs: texts(NODE_OUTPUT)?,
            attributes,
            fields,
        })
    }

    fn is_default_domain(&self) -> bool {
        self.domain.is_empty() || self.domain == "ai.onnx"
    }

    fn attribute(&self, name: &str) -> Option<&[Field<'a>]> {
        self.attributes
            .iter()
            .find(|a| a.iter().any(|f| f.number == ATTRIBUTE_NAME && f.text() == Some(name)))
            .map(Vec::as_slice)
    }

    fn ints(&self, name: &str) -> Option<Vec<i64>> {
        ints(self.attribute(name)?, ATTRIBUTE_INTS)
    }

    /// An int attribute; `None` when absent or a function's attribute reference.
    fn int(&self, name: &str) -> Option<i64> {
        let attribute = self.attribute(name)?;
        if attribute.iter().any(|f| f.number == ATTRIBUTE_REF_ATTR_NAME) {
            return None;
        }
        attribute.iter().find(|f| f.number == ATTRIBUTE_I)?.int()
    }

    /// An int attribute, or `default` (the operator's) when the node does not give it.
    fn int_or(&self, name: &str, default: i64) -> Option<i64> {
        match self.attribute(name) {
            None => Some(default),
            Some(_) => self.int(name),
        }
    }

    fn has_subgraph(&self) -> bool {
        self.attributes.iter().flatten().any(|f| matches!(f.number, ATTRIBUTE_G | ATTRIBUTE_GRAPHS))
    }

    /// This node with new inputs, outputs and name, every other field (op, domain, attributes)
    /// kept byte for byte.
    fn respelled(&self, inputs: &[&str], outputs: &[&str], name: &str) -> Vec<u8> {
        let mut node = Vec::new();
        for input in inputs {
            put_bytes(&mut node, NODE_INPUT, input.as_bytes());
        }
        for output in outputs {
            put_bytes(&mut node, NODE_OUTPUT, output.as_bytes());
        }
        put_bytes(&mut node, NODE_NAME, name.as_bytes());
        for field in self.fields.iter().filter(|f| !matches!(f.number, NODE_INPUT | NODE_OUTPUT | NODE_NAME)) {
            node.extend_from_slice(field.raw);
        }
        node
    }
}

/// Every value and node name in the graph, so that the names a rewrite adds are new.
struct Names(HashSet<String>);

impl Names {
    fn of(graph: &[Field<'_>], nodes: &[Node<'_>]) -> Option<Self> {
        let mut names: HashSet<String> = HashSet::new();
        for node in nodes {
            names.extend(node.inputs.iter().chain(&node.outputs).chain([&node.name]).map(|s| s.to_string()));
        }
        for field in graph {
            let name_field = match field.number {
                GRAPH_INITIALIZER => TENSOR_NAME,
                GRAPH_INPUT | GRAPH_OUTPUT => VALUE_INFO_NAME,
                _ => continue,
            };
            let inner = fields(field.bytes()?)?;
            if let Some(name) = inner.iter().find(|f| f.number == name_field) {
                names.insert(name.text()?.to_owned());
            }
        }
        Some(Names(names))
    }

    fn fresh(&mut self, wanted: &str) -> String {
        let mut name = wanted.to_owned();
        let mut n = 1;
        while self.0.contains(&name) {
            name = format!("{wanted}_{n}");
            n += 1;
        }
        self.0.insert(name.clone());
        name
    }
}

#[cfg(test)]
mod tests {
    use super::softmax::last_axis_perms;
    use super::*;
    use crate::onnx_wire::put_int;

    fn asset(path: &str) -> Vec<u8> {
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/models").join(path)).unwrap()
    }

    fn graph_nodes(model: &[u8]) -> Vec<Vec<u8>> {
        let model = fields(model).unwrap();
        let graph = fields(model.iter().find(|f| f.number == MODEL_GRAPH).unwrap().bytes().unwrap()).unwrap();
        graph.iter().filter(|f| f.number == GRAPH_NODE).map(|f| f.bytes().unwrap().to_vec()).collect()
    }

    #[test]
    fn perms_move_the_axis_last_and_back() {
        for rank in 1..6 {
            for axis in 0..rank {
                let (to_last, back) = last_axis_perms(axis, rank);
                assert_eq!(to_last[rank - 1], axis as i64);
                let composed: Vec<i64> = back.iter().map(|&b| to_last[b as usize]).collect();
                assert_eq!(composed, (0..rank as i64).collect::<Vec<_>>(), "axis {axis} of {rank}");
            }
        }
        assert_eq!(last_axis_perms(1, 4), (vec![0, 2, 3, 1], vec![0, 3, 1, 2]));
    }

    #[test]
    fn the_yolov8_head_softmax_becomes_a_last_axis_one_and_the_rest_stays_byte_for_byte() {
        let original = asset("shapes/1/weights.onnx");
        let rewritten = softmax_on_last_axis(&original).expect("the DFL head's Softmax is rewritten");
        assert_eq!(rewritten.softmaxes, 1);
        let (before, after) = (graph_nodes(&original), graph_nodes(&rewritten.model));
        assert_eq!(after.len(), before.len() + 2);
        let softmaxes: Vec<Node<'_>> =
            after.iter().map(|n| Node::read(n).unwrap()).filter(|n| n.op_type == "Softmax").collect();
        assert_eq!(softmaxes.len(), 1);
        assert_eq!(softmaxes[0].softmax_axis(), Some(-1));
        assert_eq!(softmaxes[0].name, "/model.22/dfl/Softmax", "the node keeps its name");
        let unchanged: Vec<&Vec<u8>> = before.iter().filter(|n| Node::read(n).unwrap().op_type != "Softmax").collect();
        let kept: Vec<&Vec<u8>> = after.iter().filter(|n| unchanged.contains(n)).collect();
        assert_eq!(kept.len(), unchanged.len(), "every other node is byte-for-byte the same");
        // Everything around the graph's nodes (weights, inputs, metadata, opsets) is unchanged.
        let rest = |model: &[u8]| -> Vec<u8> {
            let model = fields(model).unwrap();
            let mut out: Vec<u8> =
                model.iter().filter(|f| f.number != MODEL_GRAPH).flat_map(|f| f.raw.to_vec()).collect();
            let graph = fields(model.iter().find(|f| f.number == MODEL_GRAPH).unwrap().bytes().unwrap()).unwrap();
            out.extend(graph.iter().filter(|f| f.number != GRAPH_NODE).flat_map(|f| f.raw.to_vec()));
            out
        };
        assert_eq!(rest(&original), rest(&rewritten.model));
    }

    /// `model` with `extra` (one encoded field) added to its graph, or to the model itself.
    fn with_field(model: &[u8], in_graph: bool, number: u32, extra: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for field in fields(model).unwrap() {
            if field.number == MODEL_GRAPH && in_graph {
                let mut graph = field.bytes().unwrap().to_vec();
                put_bytes(&mut graph, number, extra);
                put_bytes(&mut out, MODEL_GRAPH, &graph);
            } else {
                out.extend_from_slice(field.raw);
            }
        }
        if !in_graph {
            put_bytes(&mut out, number, extra);
        }
        out
    }

    /// A one-float TensorProto, its data inline or in `weights.bin` beside the model.
    fn tensor(name: &str, external: bool) -> Vec<u8> {
        let mut t = Vec::new();
        put_int(&mut t, 1, 1); // dims
        put_int(&mut t, 2, 1); // data_type FLOAT
        put_bytes(&mut t, TENSOR_NAME, name.as_bytes());
        if external {
            let mut location = Vec::new();
            put_bytes(&mut location, 1, b"location");
            put_bytes(&mut location, 2, b"weights.bin");
            put_bytes(&mut t, TENSOR_EXTERNAL_DATA, &location);
            put_int(&mut t, TENSOR_DATA_LOCATION, TENSOR_EXTERNAL);
        } else {
            put_bytes(&mut t, 9, &1f32.to_le_bytes()); // raw_data
        }
        t
    }

    /// A node of `op_type` with one attribute holding `value` as field `number`.
    fn node(op_type: &str, output: &str, attribute: &str, number: u32, value: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        put_bytes(&mut a, ATTRIBUTE_NAME, attribute.as_bytes());
        put_bytes(&mut a, number, value);
        let mut n = Vec::new();
        put_bytes(&mut n, NODE_OUTPUT, output.as_bytes());
        put_bytes(&mut n, NODE_OP_TYPE, op_type.as_bytes());
        put_bytes(&mut n, NODE_ATTRIBUTE, &a);
        n
    }

    #[test]
    fn models_with_external_data_anywhere_are_left_alone() {
        let model = asset("shapes/1/weights.onnx");
        let constant = |external| node("Constant", "extra", "value", ATTRIBUTE_T, &tensor("c", external));
        // An inline Constant does not stop the rewrite: the check looks at the data's location.
        assert!(softmax_on_last_axis(&with_field(&model, true, GRAPH_NODE, &constant(false))).is_some());
        // A Constant node's tensor.
        assert!(softmax_on_last_axis(&with_field(&model, true, GRAPH_NODE, &constant(true))).is_none());
        // An initializer of a subgraph two levels down (an If in an If's branch).
        let mut inner = Vec::new();
        put_bytes(&mut inner, GRAPH_INITIALIZER, &tensor("w", true));
        let mut outer = Vec::new();
        put_bytes(&mut outer, GRAPH_NODE, &node("If", "y", "then_branch", ATTRIBUTE_G, &inner));
        let nested = node("If", "extra", "else_branch", ATTRIBUTE_G, &outer);
        assert!(softmax_on_last_axis(&with_field(&model, true, GRAPH_NODE, &nested)).is_none());
        // A sparse initializer's values.
        let mut sparse = Vec::new();
        put_bytes(&mut sparse, SPARSE_VALUES, &tensor("s", true));
        assert!(softmax_on_last_axis(&with_field(&model, true, GRAPH_SPARSE_INITIALIZER, &sparse)).is_none());
        // A Constant in one of the model's functions.
        let mut function = Vec::new();
        put_bytes(&mut function, FUNCTION_NODE, &constant(true));
        assert!(softmax_on_last_axis(&with_field(&model, false, MODEL_FUNCTIONS, &function)).is_none());
        // Subgraphs nested deeper than any model has are not walked: left alone.
        let mut deep = Vec::new();
        for _ in 0..=MAX_GRAPH_DEPTH + 1 {
            let mut graph = Vec::new();
            put_bytes(&mut graph, GRAPH_NODE, &deep);
            deep = node("If", "y", "then_branch", ATTRIBUTE_G, &graph);
        }
        assert!(softmax_on_last_axis(&with_field(&model, true, GRAPH_NODE, &deep)).is_none());
    }

    #[test]
    fn models_it_does_not_apply_to_are_left_alone() {
        // Softmax already on the last axis (YOLO26's attention), on a 2-D Gemm output (a classifier
        // whose axis 1 is the last), and before opset 13 (PaddleOCR's recogniser).
        for model in ["shapes-y26/1/weights.onnx", "shapes-cls/1/weights.onnx", "ppocr/4/rec.onnx"] {
            assert!(softmax_on_last_axis(&asset(model)).is_none(), "{model}");
        }
        let model = asset("shapes/1/weights.onnx");
        for cut in [1, 100, model.len() / 2, model.len() - 1] {
            assert!(softmax_on_last_axis(&model[..cut]).is_none(), "a model cut at {cut} bytes");
        }
        assert!(softmax_on_last_axis(b"not a model at all").is_none());
        assert!(softmax_on_last_axis(&[]).is_none());
    }
}
