//! OpenAI CLIP's `clip.tokenize`, which Roboflow's CLIP applies to every text: its cleaning
//! (ftfy's `fix_text`, HTML unescaped twice, whitespace runs to one space, lower case), its byte
//! pair encoding over the BPE vocabulary CLIP ships (bundled here, so a Roboflow CLIP folder
//! needs no tokenizer file), start and end tokens, zeros to 77, and a refusal, not a truncation,
//! of a longer text.
//!
//! Of ftfy's fixes, all but the mojibake repair are reproduced: C1 controls are left as they are
//! and text mis-decoded as Windows-1252 is not re-decoded (ftfy's heuristics for that are a
//! library of their own); such text tokenizes as it arrives.

use std::sync::OnceLock;

use tokenizers::Tokenizer;
use unicode_normalization::UnicodeNormalization;

pub const CONTEXT_LENGTH: usize = 77;
pub const START_OF_TEXT: u32 = 49406;
pub const END_OF_TEXT: u32 = 49407;

/// CLIP's vocabulary as OpenAI's `clip` package and `open_clip` ship it (MIT licence).
static BPE_VOCABULARY: &[u8] = include_bytes!("bpe_simple_vocab_16e6.txt.gz");

/// CLIP's word pattern: its special tokens, English contractions, letter runs, single digits and
/// runs of anything else but space.
const WORD_PATTERN: &str =
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";

/// The tokenizer over the bundled vocabulary, built once.
fn bpe() -> Result<&'static Tokenizer, String> {
    static TOKENIZER: OnceLock<Result<Tokenizer, String>> = OnceLock::new();
    TOKENIZER.get_or_init(build).as_ref().map_err(Clone::clone)
}

/// The byte-to-character table of GPT-2 and CLIP: printable bytes stand for themselves, the
/// others for the characters from U+0100 on.
fn byte_characters() -> Vec<char> {
    let printable = |b: u32| (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b);
    let mut chars: Vec<(u32, char)> = Vec::with_capacity(256);
    let mut next = 0u32;
    for b in 0..256u32 {
        if printable(b) {
            chars.push((b, char::from_u32(b).unwrap_or('?')));
        } else {
            chars.push((b, char::from_u32(256 + next).unwrap_or('?')));
            next += 1;
        }
    }
    // CLIP lists the printable bytes first, then the rest: that order is the vocabulary's.
    let mut ordered: Vec<char> = chars.iter().filter(|(b, _)| printable(*b)).map(|(_, c)| *c).collect();
    ordered.extend(chars.iter().filter(|(b, _)| !printable(*b)).map(|(_, c)| *c));
    ordered
}

fn build() -> Result<Tokenizer, String> {
    use std::io::Read;
    let mut text = String::new();
    flate2::read::GzDecoder::new(BPE_VOCABULARY)
        .read_to_string(&mut text)
        .map_err(|e| format!("CLIP's bundled vocabulary: {e}"))?;
    // As CLIP reads it: the merges after the header line, as many as fill the 49 408 tokens.
    let merges: Vec<&str> = text.split('\n').skip(1).take(49152 - 256 - 2).collect();
    let bytes = byte_characters();
    let mut vocab: Vec<String> = bytes.iter().map(|c| c.to_string()).collect();
    vocab.extend(bytes.iter().map(|c| format!("{c}</w>")));
    vocab.extend(merges.iter().map(|m| m.replace(' ', "")));
    vocab.push("<|startoftext|>".into());
    vocab.push("<|endoftext|>".into());
    let vocab: serde_json::Map<String, serde_json::Value> =
        vocab.into_iter().enumerate().map(|(i, t)| (t, serde_json::Value::from(i))).collect();
    let special = |id: u32, content: &str| {
        serde_json::json!({"id": id, "content": content, "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true})
    };
    let spec = serde_json::json!({
        "version": "1.0",
        "added_tokens": [special(START_OF_TEXT, "<|startoftext|>"), special(END_OF_TEXT, "<|endoftext|>")],
        "normalizer": null,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": WORD_PATTERN}, "behavior": "Removed", "invert": true},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}
        ]},
        "post_processor": null,
        "decoder": null,
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": "</w>", "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab, "merges": merges}
    });
    spec.to_string().parse::<Tokenizer>().map_err(|e| format!("CLIP's bundled vocabulary: {e}"))
}

/// `clip.tokenize([text])[0]` as int32: the tokens, zeros after them; an error for a text of
/// more than 77 tokens, which `clip.tokenize` refuses.
pub fn tokenize(text: &str) -> Result<Vec<i32>, String> {
    let cleaned = clean(text);
    let encoding = bpe()?.encode(cleaned.as_str(), false).map_err(|e| e.to_string())?;
    let ids = encoding.get_ids();
    if ids.len() + 2 > CONTEXT_LENGTH {
        return Err(format!(
            "Input {text:?} is too long for context length {CONTEXT_LENGTH}: it makes {} tokens",
            ids.len() + 2
        ));
    }
    let mut tokens = vec![0i32; CONTEXT_LENGTH];
    tokens[0] = START_OF_TEXT as i32;
    for (slot, &id) in tokens[1..].iter_mut().zip(ids) {
        *slot = id as i32;
    }
    tokens[ids.len() + 1] = END_OF_TEXT as i32;
    Ok(tokens)
}

/// CLIP's `whitespace_clean(basic_clean(text)).lower()`.
pub fn clean(text: &str) -> String {
    let fixed = fix_text(text);
    let unescaped = htmlize::unescape(htmlize::unescape(fixed.as_str()).as_ref()).into_owned();
    let mut out = String::with_capacity(unescaped.len());
    for word in unescaped.split(|c: char| c.is_whitespace()).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out.to_lowercase()
}

/// ftfy's `fix_text` with its default settings, but for the mojibake repair (see the module doc):
/// ligatures split, full- and half-width forms to their usual width, curly quotes straightened,
/// terminal escapes and control characters removed, NFC.
fn fix_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\u{02bc}' | '\u{2018}'..='\u{201b}' => out.push('\''),
            '\u{201c}'..='\u{201f}' => out.push('"'),
            '\u{3000}' => out.push(' '),
            '\u{ff01}'..='\u{ffef}' => out.extend(std::iter::once(c).nfkc()),
            c => match ligature(c) {
                Some(split) => out.push_str(split),
                None => out.push(c),
            },
        }
    }
    let out = remove_terminal_escapes(&out);
    out.chars().filter(|&c| !is_removed_control(c)).nfc().collect()
}

fn ligature(c: char) -> Option<&'static str> {
    Some(match c {
        'Ĳ' => "IJ",
        'ĳ' => "ij",
        'ŉ' => "ʼn",
        'Ǳ' => "DZ",
        'ǲ' => "Dz",
        'ǳ' => "dz",
        'Ǆ' => "DŽ",
        'ǅ' => "Dž",
        'ǆ' => "dž",
        'Ǉ' => "LJ",
        'ǈ' => "Lj",
        'ǉ' => "lj",
        'Ǌ' => "NJ",
        'ǋ' => "Nj",
        'ǌ' => "nj",
        'ﬀ' => "ff",
        'ﬁ' => "fi",
        'ﬂ' => "fl",
        'ﬃ' => "ffi",
        'ﬄ' => "ffl",
        'ﬅ' => "ſt",
        'ﬆ' => "st",
        _ => return None,
    })
}

/// ftfy's control characters: C0 but tab, line feed, form feed and carriage return; DEL; the
/// deprecated format characters; the byte-order mark; the interlinear annotation marks.
fn is_removed_control(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{e}'..='\u{1f}' | '\u{7f}' | '\u{206a}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffc}')
}

/// Removes `ESC [ digits-and-semicolons letter` sequences.
fn remove_terminal_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("\u{1b}[") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let params = after.find(|c: char| !(c.is_ascii_digit() || c == ';')).unwrap_or(after.len());
        match after[params..].chars().next() {
            Some(letter) if letter.is_ascii_alphabetic() => rest = &after[params + 1..],
            _ => {
                out.push_str("\u{1b}[");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_cleaning_follows_ftfy_and_html() {
        assert_eq!(clean("  A  RED\tSquare \n"), "a red square");
        assert_eq!(clean("\u{201c}hi\u{201d} \u{2018}x\u{2019}"), "\"hi\" 'x'");
        assert_eq!(clean("\u{fb01}ne"), "fine");
        assert_eq!(clean("\u{ff21}\u{ff11}"), "a1");
        assert_eq!(clean("&amp;lt; &eacute;"), "< é");
        assert_eq!(clean("\u{1b}[31mred\u{1b}[0m"), "red");
        assert_eq!(clean("Cre\u{300}me"), "crème");
    }

    #[test]
    fn tokens_as_clip_tokenize_gives_them() {
        // clip.tokenize("a photo of a circle")
        let tokens = tokenize("a photo of a circle").unwrap();
        assert_eq!(&tokens[..7], &[49406, 320, 1125, 539, 320, 7117, 49407]);
        assert!(tokens[7..].iter().all(|&t| t == 0));
        assert_eq!(tokenize("").unwrap()[..3], [49406, 49407, 0]);
    }

    #[test]
    fn a_text_past_77_tokens_is_refused() {
        let e = tokenize(&"word ".repeat(100)).unwrap_err();
        assert!(e.contains("too long for context length 77"), "{e}");
        assert!(tokenize(&"word ".repeat(75)).is_ok());
    }
}
