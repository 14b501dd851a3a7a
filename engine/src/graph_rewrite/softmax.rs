//! A Softmax over an axis other than the last. ONNX Runtime's CPU kernel computes such a Softmax
//! by transposing into a scratch buffer element by element, which on the distribution-focal-loss
//! head that every YOLOv8, v10, 11 detection, segmentation and pose export carries (`Transpose`
//! then `Softmax(axis=1)` over 16 bins) costs about 1 ms of a 7 ms inference at 256x256, and grows
//! with the input's area. The rewrite makes the transposes graph nodes around a last-axis Softmax:
//! the same kernel on the same rows gives bit-identical outputs, and ONNX Runtime's transpose
//! optimiser merges the first node into the Transpose before it.

use super::*;
use crate::onnx_wire::put_int;

/// This rewrite alone, as [`super::rewrite_graph`] applies it.
pub fn softmax_on_last_axis(model: &[u8]) -> Option<Rewritten> {
    if has_external_data(&fields(model)?)? {
        return None;
    }
    let (model, softmaxes) = on_last_axis(model)?;
    Some(Rewritten { model, softmaxes, split_convs: 0 })
}

/// `model` with every Softmax whose input comes from a Transpose (so its rank is known) and whose
/// axis is not the last computed on the last axis between two Transposes, and how many; `None`
/// when nothing applies or before opset 13, where Softmax flattened its input instead.
pub(super) fn on_last_axis(model: &[u8]) -> Option<(Vec<u8>, usize)> {
    let model_fields = fields(model)?;
    if !softmax_is_per_axis(&model_fields)? {
        return None;
    }
    let (graph_fields, nodes) = read_graph(&model_fields)?;
    let mut names = Names::of(&graph_fields, &nodes)?;
    let ranks: Vec<(&str, usize)> = nodes
        .iter()
        .filter(|n| n.is_default_domain() && n.op_type == "Transpose")
        .filter_map(|n| Some((*n.outputs.first()?, n.ints("perm")?.len())))
        .collect();
    let rank_of = |name: &str| ranks.iter().find(|(n, _)| *n == name).map(|&(_, r)| r);

    let mut graph = Vec::with_capacity(model.len() + 1024);
    let mut softmaxes = 0;
    let mut node_index = 0;
    for field in &graph_fields {
        if field.number != GRAPH_NODE {
            graph.extend_from_slice(field.raw);
            continue;
        }
        let node = &nodes[node_index];
        node_index += 1;
        let middle_axis = node
            .softmax_axis()
            .and_then(|axis| {
                let rank = rank_of(node.inputs.first()?)?;
                Some((normalized(axis, rank)?, rank))
            })
            .filter(|&(axis, rank)| axis + 1 < rank);
        match middle_axis {
            Some((axis, rank)) => {
                for replacement in node.on_last_axis(axis, rank, &mut names)? {
                    put_bytes(&mut graph, GRAPH_NODE, &replacement);
                }
                softmaxes += 1;
            }
            None => graph.extend_from_slice(field.raw),
        }
    }
    if softmaxes == 0 {
        return None;
    }
    Some((with_graph(&model_fields, &graph), softmaxes))
}

/// Whether the model's default-domain opset has Softmax over one axis (13 and later).
fn softmax_is_per_axis(model: &[Field<'_>]) -> Option<bool> {
    for opset in model.iter().filter(|f| f.number == MODEL_OPSET_IMPORT) {
        let opset = fields(opset.bytes()?)?;
        let domain = opset.iter().find(|f| f.number == OPSET_DOMAIN).map_or(Some(""), Field::text)?;
        if domain.is_empty() || domain == "ai.onnx" {
            return Some(opset.iter().find(|f| f.number == OPSET_VERSION)?.int()? >= 13);
        }
    }
    Some(false)
}

/// The permutation that moves `axis` last keeping the others in order, and its inverse.
pub(super) fn last_axis_perms(axis: usize, rank: usize) -> (Vec<i64>, Vec<i64>) {
    let to_last: Vec<usize> = (0..rank).filter(|&a| a != axis).chain([axis]).collect();
    let mut back = vec![0; rank];
    for (i, &a) in to_last.iter().enumerate() {
        back[a] = i as i64;
    }
    (to_last.into_iter().map(|a| a as i64).collect(), back)
}

impl<'a> Node<'a> {
    /// The axis of a default-domain Softmax with one input and one output (-1 when not given);
    /// `None` for any other node, or an axis that refers to a function's attribute.
    pub(super) fn softmax_axis(&self) -> Option<i64> {
        if !(self.is_default_domain() && self.op_type == "Softmax" && self.inputs.len() == 1 && self.outputs.len() == 1)
        {
            return None;
        }
        self.int_or("axis", -1)
    }

    /// Transpose (axis to last), this Softmax on the last axis, Transpose back: the three nodes
    /// encoded, the Softmax keeping every field of its own but its input, output and axis.
    fn on_last_axis(&self, axis: usize, rank: usize, names: &mut Names) -> Option<[Vec<u8>; 3]> {
        let (input, output) = (*self.inputs.first()?, *self.outputs.first()?);
        let moved = names.fresh(&format!("{output}/last_axis_input"));
        let computed = names.fresh(&format!("{output}/last_axis_output"));
        let (to_last, back) = last_axis_perms(axis, rank);
        let transpose = |name: String, from: &str, to: &str, perm: &[i64]| {
            let mut node = Vec::new();
            put_bytes(&mut node, NODE_INPUT, from.as_bytes());
            put_bytes(&mut node, NODE_OUTPUT, to.as_bytes());
            put_bytes(&mut node, NODE_NAME, name.as_bytes());
            put_bytes(&mut node, NODE_OP_TYPE, b"Transpose");
            let mut attribute = Vec::new();
            put_bytes(&mut attribute, ATTRIBUTE_NAME, b"perm");
            for &p in perm {
                put_int(&mut attribute, ATTRIBUTE_INTS, p);
            }
            put_int(&mut attribute, ATTRIBUTE_TYPE, ATTRIBUTE_TYPE_INTS);
            put_bytes(&mut node, NODE_ATTRIBUTE, &attribute);
            node
        };
        let mut softmax = Vec::new();
        put_bytes(&mut softmax, NODE_INPUT, moved.as_bytes());
        put_bytes(&mut softmax, NODE_OUTPUT, computed.as_bytes());
        let mut axis_attribute = Vec::new();
        put_bytes(&mut axis_attribute, ATTRIBUTE_NAME, b"axis");
        put_int(&mut axis_attribute, ATTRIBUTE_I, -1);
        put_int(&mut axis_attribute, ATTRIBUTE_TYPE, ATTRIBUTE_TYPE_INT);
        put_bytes(&mut softmax, NODE_ATTRIBUTE, &axis_attribute);
        for field in &self.fields {
            let is_axis = field.number == NODE_ATTRIBUTE
                && fields(field.bytes()?)?.iter().any(|f| f.number == ATTRIBUTE_NAME && f.text() == Some("axis"));
            if !matches!(field.number, NODE_INPUT | NODE_OUTPUT) && !is_axis {
                softmax.extend_from_slice(field.raw);
            }
        }
        let name = if self.name.is_empty() { output } else { self.name };
        Some([
            transpose(names.fresh(&format!("{name}/to_last_axis")), input, &moved, &to_last),
            softmax,
            transpose(names.fresh(&format!("{name}/from_last_axis")), &computed, output, &back),
        ])
    }
}
