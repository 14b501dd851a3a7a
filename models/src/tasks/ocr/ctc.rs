//! Greedy CTC decoding: the best class per time step, repeats merged, blanks (index 0) dropped.

use ndarray::ArrayView2;

/// Text and score (mean probability of the emitted characters; 0 when nothing is emitted) of one
/// `(time, classes)` probability matrix. `characters[i]` is the text of class `i`; class 0 is blank.
pub fn greedy_decode(probabilities: ArrayView2<'_, f32>, characters: &[String]) -> (String, f32) {
    let mut text = String::new();
    let mut confidences = Vec::new();
    let mut previous = None;
    for step in probabilities.rows() {
        let (index, p) =
            step.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b });
        if index != 0 && previous != Some(index) {
            if let Some(c) = characters.get(index) {
                text.push_str(c);
                confidences.push(p);
            }
        }
        previous = Some(index);
    }
    let score = if confidences.is_empty() { 0.0 } else { confidences.iter().sum::<f32>() / confidences.len() as f32 };
    (text, score)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn chars() -> Vec<String> {
        ["<blank>", "a", "b", " "].iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn merges_repeats_and_drops_blanks() {
        // a a <blank> a b b <blank>  ->  "aab"
        let p = array![
            [0.1, 0.8, 0.05, 0.05],
            [0.1, 0.6, 0.2, 0.1],
            [0.9, 0.05, 0.05, 0.0],
            [0.2, 0.7, 0.1, 0.0],
            [0.1, 0.1, 0.8, 0.0],
            [0.1, 0.1, 0.5, 0.3],
            [0.7, 0.1, 0.1, 0.1],
        ];
        let (text, score) = greedy_decode(p.view(), &chars());
        assert_eq!(text, "aab");
        // Emitted at steps 0, 3, 4: (0.8 + 0.7 + 0.8) / 3.
        assert!((score - 2.3 / 3.0).abs() < 1e-6, "{score}");
    }

    #[test]
    fn a_blank_between_repeats_keeps_both_and_all_blank_is_empty() {
        let p = array![[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]];
        assert_eq!(greedy_decode(p.view(), &chars()).0, "aa ");
        let blank = array![[1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]];
        assert_eq!(greedy_decode(blank.view(), &chars()), (String::new(), 0.0));
    }
}
