//! A Conv whose output channels a Split divides, with or without a SiLU (`x * Sigmoid(x)`) between
//! them: how every C2f and C3k2 block of YOLOv8, 11 and 26 opens. ONNX Runtime's CPU optimiser
//! runs Convs in its blocked channel layout (NCHWc) but has no blocked Split, so each such Split
//! costs a conversion back to NCHW before it, one more after it for every Conv it feeds, and the
//! Adds and Concats of the block fall back to NCHW with it: about 30 layout conversions on a
//! YOLOv8n, and the Split's own copy. One Conv per part, with that part's rows of the weights,
//! computes the same sums in the same order for every output channel (bit-identical outputs), and
//! the whole block stays in the blocked layout.

use std::collections::{HashMap, HashSet};

use super::*;
use crate::onnx_wire::put_int;

const GRAPH_VALUE_INFO: u32 = 13;
const TENSOR_DIMS: u32 = 1;
const TENSOR_DATA_TYPE: u32 = 2;
const TENSOR_SEGMENT: u32 = 3;
const TENSOR_FLOAT_DATA: u32 = 4;
const TENSOR_INT64_DATA: u32 = 7;
const TENSOR_RAW_DATA: u32 = 9;
const FLOAT: i64 = 1;
const INT64: i64 = 7;

/// This rewrite alone, as [`super::rewrite_graph`] applies it.
pub fn split_convs(model: &[u8]) -> Option<Rewritten> {
    if has_external_data(&fields(model)?)? {
        return None;
    }
    let (model, split_convs) = split(model)?;
    Some(Rewritten { model, softmaxes: 0, split_convs })
}

/// `model` with every Conv that a Split divides made one Conv per part, and how many; `None` when
/// nothing applies or the graph has subgraphs (which may read any value by name, unseen here).
pub(super) fn split(model: &[u8]) -> Option<(Vec<u8>, usize)> {
    let model_fields = fields(model)?;
    let (graph_fields, nodes) = read_graph(&model_fields)?;
    if nodes.iter().any(Node::has_subgraph) {
        return None;
    }
    let graph = Graph::of(&graph_fields, &nodes)?;
    let plans: Vec<Plan<'_>> = (0..nodes.len()).filter_map(|i| graph.plan(i)).collect();
    if plans.is_empty() {
        return None;
    }
    let mut names = Names::of(&graph_fields, &nodes)?;
    let (rewritten, dropped) = graph.rewritten(&graph_fields, &plans, &mut names)?;
    tracing::debug!(convs = plans.len(), dropped_initializers = dropped, "split convs");
    Some((with_graph(&model_fields, &rewritten), plans.len()))
}

/// A float tensor's shape and little-endian data, as an initializer holds it.
struct Floats<'a> {
    dims: Vec<i64>,
    data: &'a [u8],
}

impl<'a> Floats<'a> {
    fn read(tensor: &'a [u8]) -> Option<Self> {
        let tensor = fields(tensor)?;
        if tensor.iter().any(|f| f.number == TENSOR_SEGMENT) || data_type(&tensor)? != FLOAT {
            return None;
        }
        let dims = ints(&tensor, TENSOR_DIMS)?;
        let count = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(usize::try_from(d).ok()?))?;
        // Raw bytes, or `float_data` written packed (the same little-endian bytes).
        let data = tensor.iter().find(|f| matches!(f.number, TENSOR_RAW_DATA | TENSOR_FLOAT_DATA))?.bytes()?;
        (data.len() == count.checked_mul(4)?).then_some(Floats { dims, data })
    }
}

fn data_type(tensor: &[Field<'_>]) -> Option<i64> {
    tensor.iter().find(|f| f.number == TENSOR_DATA_TYPE)?.int()
}

/// An int64 initializer's values (a Split's sizes).
fn int64s(tensor: &[u8]) -> Option<Vec<i64>> {
    let tensor = fields(tensor)?;
    if tensor.iter().any(|f| f.number == TENSOR_SEGMENT) || data_type(&tensor)? != INT64 {
        return None;
    }
    match tensor.iter().find(|f| f.number == TENSOR_RAW_DATA) {
        Some(raw) => {
            let raw = raw.bytes()?;
            (raw.len() % 8 == 0)
                .then(|| raw.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap_or_default())).collect())
        }
        None => ints(&tensor, TENSOR_INT64_DATA),
    }
}

/// A float initializer encoded with raw data.
fn float_tensor(name: &str, dims: &[i64], data: &[u8]) -> Vec<u8> {
    let mut tensor = Vec::with_capacity(data.len() + name.len() + 32);
    for &d in dims {
        put_int(&mut tensor, TENSOR_DIMS, d);
    }
    put_int(&mut tensor, TENSOR_DATA_TYPE, FLOAT);
    put_bytes(&mut tensor, TENSOR_NAME, name.as_bytes());
    put_bytes(&mut tensor, TENSOR_RAW_DATA, data);
    tensor
}

/// One Conv a Split divides: the node indices of the Conv, of the SiLU's Sigmoid and Mul when
/// there is one, of the Split; the parts' channel counts; the Conv's weights and bias.
struct Plan<'a> {
    conv: usize,
    silu: Option<(usize, usize)>,
    split: usize,
    sizes: Vec<usize>,
    weights: Floats<'a>,
    bias: Option<Floats<'a>>,
}

/// A plan's encoded nodes, in order, and the initializers they read.
type Parts = (Vec<Vec<u8>>, Vec<Vec<u8>>);

/// Who produces and who reads each value of the graph, its inputs, outputs and initializers.
struct Graph<'a, 'n> {
    nodes: &'n [Node<'a>],
    producer: HashMap<&'a str, usize>,
    readers: HashMap<&'a str, Vec<usize>>,
    edges: HashSet<&'a str>,
    initializers: HashMap<&'a str, &'a [u8]>,
}

impl<'a, 'n> Graph<'a, 'n> {
    fn of(graph: &[Field<'a>], nodes: &'n [Node<'a>]) -> Option<Self> {
        let mut producer = HashMap::new();
        let mut readers: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, node) in nodes.iter().enumerate() {
            for &output in &node.outputs {
                producer.insert(output, i);
            }
            for &input in node.inputs.iter().filter(|n| !n.is_empty()) {
                readers.entry(input).or_default().push(i);
            }
        }
        let (mut edges, mut initializers) = (HashSet::new(), HashMap::new());
        for field in graph {
            let inner = || fields(field.bytes()?);
            match field.number {
                GRAPH_INPUT | GRAPH_OUTPUT => {
                    let info = inner()?;
                    edges.insert(info.iter().find(|f| f.number == VALUE_INFO_NAME).map_or(Some(""), Field::text)?);
                }
                GRAPH_INITIALIZER => {
                    let tensor = inner()?;
                    let name = tensor.iter().find(|f| f.number == TENSOR_NAME).map_or(Some(""), Field::text)?;
                    initializers.insert(name, field.bytes()?);
                }
                _ => {}
            }
        }
        Some(Graph { nodes, producer, readers, edges, initializers })
    }

    /// Whether `value` is read by exactly `readers` (in any order) and is not a graph input or output.
    fn read_only_by(&self, value: &str, readers: &[usize]) -> bool {
        let mut found = self.readers.get(value).cloned().unwrap_or_default();
        found.sort_unstable();
        let mut wanted = readers.to_vec();
        wanted.sort_unstable();
        found == wanted && !self.edges.contains(value)
    }

    /// A constant the graph owns: an initializer that no graph input of the same name may replace.
    fn constant(&self, name: &str) -> Option<&'a [u8]> {
        (!self.edges.contains(name)).then(|| self.initializers.get(name).copied())?
    }

    fn node(&self, value: &str, op_type: &str) -> Option<usize> {
        let i = *self.producer.get(value)?;
        let node = &self.nodes[i];
        (node.is_default_domain() && node.op_type == op_type && node.outputs.len() == 1).then_some(i)
    }

    fn plan(&self, split: usize) -> Option<Plan<'a>> {
        let node = &self.nodes[split];
        // Every part must be named: a part's Conv writes the Split's output for it.
        let named = node.outputs.iter().all(|o| !o.is_empty());
        if !(node.is_default_domain() && node.op_type == "Split" && node.outputs.len() >= 2 && named) {
            return None;
        }
        let input = *node.inputs.first()?;
        let (conv, silu) = self.conv_before(input, split)?;
        let conv_node = &self.nodes[conv];
        if !matches!(conv_node.inputs.len(), 2 | 3) || conv_node.int_or("group", 1)? != 1 {
            return None;
        }
        let weights = Floats::read(self.constant(conv_node.inputs[1])?)?;
        let bias = match conv_node.inputs.get(2).filter(|b| !b.is_empty()) {
            Some(b) => Some(Floats::read(self.constant(b)?)?),
            None => None,
        };
        let channels = usize::try_from(*weights.dims.first()?).ok()?;
        if bias.as_ref().is_some_and(|b| b.dims != [channels as i64]) {
            return None;
        }
        if normalized(node.int_or("axis", 0)?, weights.dims.len())? != 1 {
            return None;
        }
        let sizes = self.split_sizes(node, channels)?;
        if self.meets_a_conv_sum(&node.outputs) {
            return None;
        }
        Some(Plan { conv, silu, split, sizes, weights, bias })
    }

    /// The Conv whose output reaches `value` (read by `split` alone), directly or through a SiLU
    /// that nothing else reads.
    fn conv_before(&self, value: &str, split: usize) -> Option<(usize, Option<(usize, usize)>)> {
        if !self.read_only_by(value, &[split]) {
            return None;
        }
        if let Some(conv) = self.node(value, "Conv") {
            return Some((conv, None));
        }
        let mul = self.node(value, "Mul")?;
        let [a, b] = self.nodes[mul].inputs[..] else { return None };
        let (x, sigmoid) = [(a, b), (b, a)].into_iter().find_map(|(x, s)| {
            let sigmoid = self.node(s, "Sigmoid")?;
            (self.nodes[sigmoid].inputs[..] == [x]).then_some((x, sigmoid))
        })?;
        let conv = self.node(x, "Conv")?;
        let silu_only =
            self.read_only_by(x, &[sigmoid, mul]) && self.read_only_by(self.nodes[sigmoid].outputs[0], &[mul]);
        silu_only.then_some((conv, Some((sigmoid, mul))))
    }

    /// Whether what is computed from `start` before the next Conv adds a Conv's output (an Add or
    /// Sum with a Conv's output as an operand). Those values change layout with the rewrite, and
    /// ONNX Runtime folds such an Add into the Conv's accumulation once both operands share the
    /// blocked layout, which rounds differently: a rewrite that must stay exact leaves such a Split
    /// alone (the attention blocks of YOLOv10, 11 and 26).
    fn meets_a_conv_sum(&self, start: &[&'a str]) -> bool {
        let mut seen: HashSet<&str> = start.iter().copied().collect();
        let mut todo: Vec<&str> = start.to_vec();
        let is_conv_output = |value: &str| self.producer.get(value).is_some_and(|&p| self.nodes[p].op_type == "Conv");
        while let Some(value) = todo.pop() {
            for &reader in self.readers.get(value).map_or(&[][..], Vec::as_slice) {
                let node = &self.nodes[reader];
                if node.op_type == "Conv" {
                    continue;
                }
                if matches!(node.op_type, "Add" | "Sum")
                    && node.inputs.iter().any(|&i| !seen.contains(i) && is_conv_output(i))
                {
                    return true;
                }
                for &output in &node.outputs {
                    if seen.insert(output) {
                        todo.push(output);
                    }
                }
            }
        }
        false
    }

    /// The channel count of each of the Split's outputs: its `split` input or attribute, else equal
    /// parts (`num_outputs`, or as many as it has outputs).
    fn split_sizes(&self, node: &Node<'a>, channels: usize) -> Option<Vec<usize>> {
        let given = match node.inputs.get(1).filter(|s| !s.is_empty()) {
            Some(sizes) => Some(int64s(self.constant(sizes)?)?),
            None => node.attribute("split").and_then(|_| node.ints("split")),
        };
        let parts = node.outputs.len();
        let sizes: Vec<usize> = match given {
            Some(sizes) => sizes.into_iter().map(|s| usize::try_from(s).ok()).collect::<Option<_>>()?,
            None if channels.is_multiple_of(parts) => vec![channels / parts; parts],
            None => return None,
        };
        let valid = sizes.len() == parts && sizes.iter().all(|&s| s > 0) && sizes.iter().sum::<usize>() == channels;
        valid.then_some(sizes)
    }

    /// The graph's fields with each plan's nodes replaced and weights divided; initializers that
    /// only the replaced nodes read, and shape annotations of values that no longer exist, are
    /// dropped. Also returns how many initializers were dropped.
    fn rewritten(&self, graph: &[Field<'_>], plans: &[Plan<'a>], names: &mut Names) -> Option<(Vec<u8>, usize)> {
        let replaced: HashSet<usize> = plans
            .iter()
            .flat_map(|p| [Some(p.conv), Some(p.split), p.silu.map(|s| s.0), p.silu.map(|s| s.1)])
            .flatten()
            .collect();
        let gone_values: HashSet<&str> = plans
            .iter()
            .flat_map(|p| {
                let mut values = vec![self.nodes[p.conv].outputs[0]];
                if let Some((sigmoid, mul)) = p.silu {
                    values.extend([self.nodes[sigmoid].outputs[0], self.nodes[mul].outputs[0]]);
                }
                values
            })
            .collect();
        let unread = |name: &str| self.readers.get(name).is_some_and(|r| r.iter().all(|i| replaced.contains(i)));
        let mut parts: HashMap<usize, Parts> = HashMap::new();
        for plan in plans {
            parts.insert(plan.conv, self.parts(plan, names)?);
        }
        let (mut out, mut new_initializers, mut dropped) = (Vec::new(), Vec::new(), 0);
        let mut node_index = 0;
        for field in graph {
            match field.number {
                GRAPH_NODE => {
                    let i = node_index;
                    node_index += 1;
                    if let Some((nodes, initializers)) = parts.remove(&i) {
                        nodes.iter().for_each(|n| put_bytes(&mut out, GRAPH_NODE, n));
                        new_initializers.extend(initializers);
                    } else if !replaced.contains(&i) {
                        out.extend_from_slice(field.raw);
                    }
                }
                GRAPH_INITIALIZER => {
                    let tensor = fields(field.bytes()?)?;
                    let name = tensor.iter().find(|f| f.number == TENSOR_NAME).map_or(Some(""), Field::text)?;
                    if unread(name) {
                        dropped += 1;
                    } else {
                        out.extend_from_slice(field.raw);
                    }
                }
                GRAPH_VALUE_INFO => {
                    let info = fields(field.bytes()?)?;
                    let name = info.iter().find(|f| f.number == VALUE_INFO_NAME).map_or(Some(""), Field::text)?;
                    if !gone_values.contains(name) {
                        out.extend_from_slice(field.raw);
                    }
                }
                _ => out.extend_from_slice(field.raw),
            }
        }
        new_initializers.iter().for_each(|t| put_bytes(&mut out, GRAPH_INITIALIZER, t));
        Some((out, dropped))
    }

    /// Per part: its Conv (and SiLU), writing the Split's output for that part, and its weights.
    fn parts(&self, plan: &Plan<'a>, names: &mut Names) -> Option<Parts> {
        let conv = &self.nodes[plan.conv];
        let outputs = &self.nodes[plan.split].outputs;
        let row_bytes = plan.weights.data.len() / usize::try_from(plan.weights.dims[0]).ok()?;
        let label = if conv.name.is_empty() { conv.outputs[0] } else { conv.name };
        let (mut nodes, mut initializers) = (Vec::new(), Vec::new());
        let mut first = 0;
        for (k, (&size, &output)) in plan.sizes.iter().zip(outputs).enumerate() {
            let mut dims = plan.weights.dims.clone();
            dims[0] = size as i64;
            let weights = names.fresh(&format!("{}/part{k}", conv.inputs[1]));
            initializers.push(float_tensor(
                &weights,
                &dims,
                plan.weights.data.get(first * row_bytes..(first + size) * row_bytes)?,
            ));
            let mut inputs = vec![conv.inputs[0], weights.as_str()];
            let bias_name;
            if let Some(bias) = &plan.bias {
                bias_name = names.fresh(&format!("{}/part{k}", conv.inputs[2]));
                initializers.push(float_tensor(
                    &bias_name,
                    &[size as i64],
                    bias.data.get(first * 4..(first + size) * 4)?,
                ));
                inputs.push(bias_name.as_str());
            }
            let name = names.fresh(&format!("{label}/part{k}"));
            match plan.silu {
                None => nodes.push(conv.respelled(&inputs, &[output], &name)),
                Some((sigmoid, mul)) => {
                    let (sigmoid, mul) = (&self.nodes[sigmoid], &self.nodes[mul]);
                    let x = names.fresh(&format!("{}/part{k}", conv.outputs[0]));
                    let s = names.fresh(&format!("{}/part{k}", sigmoid.outputs[0]));
                    nodes.push(conv.respelled(&inputs, &[&x], &name));
                    let sigmoid_name = names.fresh(&format!("{name}/sigmoid"));
                    nodes.push(sigmoid.respelled(&[&x], &[&s], &sigmoid_name));
                    let mul_inputs: Vec<&str> = mul
                        .inputs
                        .iter()
                        .map(|&i| if i == sigmoid.outputs[0] { s.as_str() } else { x.as_str() })
                        .collect();
                    let mul_name = names.fresh(&format!("{name}/mul"));
                    nodes.push(mul.respelled(&mul_inputs, &[output], &mul_name));
                }
            }
            first += size;
        }
        Some((nodes, initializers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asset(path: &str) -> Vec<u8> {
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/models").join(path)).unwrap()
    }

    /// Each node's op and inputs; each float initializer's shape and bytes by name.
    type Contents = (Vec<(String, Vec<String>)>, HashMap<String, (Vec<i64>, Vec<u8>)>);

    fn contents(model: &[u8]) -> Contents {
        let model = fields(model).unwrap();
        let graph = fields(model.iter().find(|f| f.number == MODEL_GRAPH).unwrap().bytes().unwrap()).unwrap();
        let nodes = graph
            .iter()
            .filter(|f| f.number == GRAPH_NODE)
            .map(|f| {
                let node = Node::read(f.bytes().unwrap()).unwrap();
                (node.op_type.to_owned(), node.inputs.iter().map(|s| s.to_string()).collect())
            })
            .collect();
        let initializers = graph
            .iter()
            .filter(|f| f.number == GRAPH_INITIALIZER)
            .filter_map(|f| {
                let tensor = fields(f.bytes().unwrap()).unwrap();
                let name = tensor.iter().find(|f| f.number == TENSOR_NAME).unwrap().text().unwrap().to_owned();
                Floats::read(f.bytes().unwrap()).map(|t| (name, (t.dims, t.data.to_vec())))
            })
            .collect();
        (nodes, initializers)
    }

    #[test]
    fn each_c2f_conv_becomes_one_conv_per_part_with_its_rows_of_the_weights() {
        let original = asset("shapes/1/weights.onnx");
        let rewritten = split_convs(&original).expect("the C2f blocks' Convs are split");
        assert_eq!(rewritten.split_convs, 8);
        let (before, weights_before) = contents(&original);
        let (after, weights_after) = contents(&rewritten.model);
        let count = |nodes: &[(String, Vec<String>)], op: &str| nodes.iter().filter(|(o, _)| o == op).count();
        assert_eq!(count(&before, "Split"), 8);
        assert_eq!(count(&after, "Split"), 0);
        for op in ["Conv", "Sigmoid", "Mul"] {
            assert_eq!(count(&after, op), count(&before, op) + 8, "{op}");
        }
        // model.2's cv1 (16 output channels, split 8 + 8): its weights and bias, halved by rows.
        let (dims, whole) = &weights_before["model.2.cv1.conv.weight"];
        assert!(!weights_after.contains_key("model.2.cv1.conv.weight"), "the divided weights are dropped");
        let rows = whole.len() / dims[0] as usize;
        for (k, half) in whole.chunks(8 * rows).enumerate() {
            let (part_dims, part) = &weights_after[&format!("model.2.cv1.conv.weight/part{k}")];
            assert_eq!(part_dims[0], 8);
            assert_eq!(&part_dims[1..], &dims[1..]);
            assert_eq!(part, half);
            let (_, bias) = &weights_after[&format!("model.2.cv1.conv.bias/part{k}")];
            assert_eq!(bias.as_slice(), &weights_before["model.2.cv1.conv.bias"].1[k * 32..(k + 1) * 32]);
        }
        // Each new Conv reads the block's input with one part's weights.
        let parts: Vec<&Vec<String>> = after
            .iter()
            .filter(|(op, inputs)| op == "Conv" && inputs[1].starts_with("model.2.cv1.conv.weight/part"))
            .map(|(_, inputs)| inputs)
            .collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0][0], parts[1][0]);
    }

    #[test]
    fn models_without_a_divided_conv_are_left_alone() {
        // YOLOv5's C3 blocks have two Convs and no Split; a cut model and garbage are not models.
        assert!(split_convs(&asset("shapes-det-v5/1/weights.onnx")).is_none());
        let model = asset("shapes/1/weights.onnx");
        for cut in [1, 100, model.len() / 2, model.len() - 1] {
            assert!(split_convs(&model[..cut]).is_none(), "a model cut at {cut} bytes");
        }
        assert!(split_convs(b"not a model at all").is_none());
    }
}
