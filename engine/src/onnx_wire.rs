//! The protobuf wire format, as far as editing an ONNX model in place needs it: a message read as
//! its fields, each kept as the bytes it came in, so that a rewrite re-encodes only what it changes
//! and every field it does not know (a newer ONNX's, a producer's own) comes through unchanged.

/// One field of a message: its number, its value and the bytes it occupies (tag included).
#[derive(Debug, Clone, Copy)]
pub struct Field<'a> {
    pub number: u32,
    pub value: Value<'a>,
    pub raw: &'a [u8],
}

/// A field's value by wire type; fixed-width values are not needed by any rewrite, only skipped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

impl<'a> Field<'a> {
    pub fn bytes(&self) -> Option<&'a [u8]> {
        match self.value {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    pub fn text(&self) -> Option<&'a str> {
        self.bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// An int64 field (two's complement in a varint).
    pub fn int(&self) -> Option<i64> {
        match self.value {
            Value::Varint(v) => Some(v as i64),
            _ => None,
        }
    }
}

/// The fields of `message` in order; `None` when the bytes are not a well-formed message (a
/// truncated value, a group, a wire type protobuf does not have).
pub fn fields(message: &[u8]) -> Option<Vec<Field<'_>>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < message.len() {
        let start = at;
        let tag = varint(message, &mut at)?;
        let number = u32::try_from(tag >> 3).ok().filter(|&n| n > 0)?;
        let value = match tag & 7 {
            0 => Value::Varint(varint(message, &mut at)?),
            1 => skip(message, &mut at, 8)?,
            2 => {
                let len = usize::try_from(varint(message, &mut at)?).ok()?;
                let end = at.checked_add(len)?;
                let bytes = message.get(at..end)?;
                at = end;
                Value::Bytes(bytes)
            }
            5 => skip(message, &mut at, 4)?,
            _ => return None,
        };
        out.push(Field { number, value, raw: &message[start..at] });
    }
    Some(out)
}

/// The values of a repeated int64 field, written either packed or one field per value.
pub fn ints(fields: &[Field<'_>], number: u32) -> Option<Vec<i64>> {
    let mut out = Vec::new();
    for f in fields.iter().filter(|f| f.number == number) {
        match f.value {
            Value::Varint(v) => out.push(v as i64),
            Value::Bytes(packed) => {
                let mut at = 0;
                while at < packed.len() {
                    out.push(varint(packed, &mut at)? as i64);
                }
            }
            Value::Fixed => return None,
        }
    }
    Some(out)
}

fn skip<'a>(message: &[u8], at: &mut usize, width: usize) -> Option<Value<'a>> {
    let end = at.checked_add(width).filter(|&e| e <= message.len())?;
    *at = end;
    Some(Value::Fixed)
}

fn varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Appends a varint.
pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends a length-delimited field (a string, bytes or a message).
pub fn put_bytes(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    put_varint(out, (u64::from(number) << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Appends an integer field (int32, int64 or an enum).
pub fn put_int(out: &mut Vec<u8>, number: u32, value: i64) {
    put_varint(out, u64::from(number) << 3);
    put_varint(out, value as u64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_byte_for_byte() {
        let mut message = Vec::new();
        put_bytes(&mut message, 4, b"Softmax");
        put_int(&mut message, 3, -1);
        put_int(&mut message, 20, 2);
        message.extend_from_slice(&[0x0d, 1, 2, 3, 4]); // field 1, fixed32
        message.extend_from_slice(&[0x11, 1, 2, 3, 4, 5, 6, 7, 8]); // field 2, fixed64
        let read = fields(&message).unwrap();
        assert_eq!(read.iter().map(|f| f.number).collect::<Vec<_>>(), [4, 3, 20, 1, 2]);
        assert_eq!(read[0].text(), Some("Softmax"));
        assert_eq!(read[1].int(), Some(-1), "negative int64 takes ten bytes and comes back");
        assert_eq!(read.iter().flat_map(|f| f.raw.iter().copied()).collect::<Vec<_>>(), message);
    }

    #[test]
    fn repeated_ints_packed_or_not() {
        let mut unpacked = Vec::new();
        for v in [0, 2, 1, 3] {
            put_int(&mut unpacked, 8, v);
        }
        let mut values = Vec::new();
        for v in [0u64, 2, 1, 3] {
            put_varint(&mut values, v);
        }
        let mut packed = Vec::new();
        put_bytes(&mut packed, 8, &values);
        assert_eq!(ints(&fields(&unpacked).unwrap(), 8).unwrap(), [0, 2, 1, 3]);
        assert_eq!(ints(&fields(&packed).unwrap(), 8).unwrap(), [0, 2, 1, 3]);
    }

    #[test]
    fn malformed_messages_are_none() {
        let mut long = Vec::new();
        put_bytes(&mut long, 1, b"abc");
        for bad in
            [&long[..long.len() - 1], &[0x08][..], &[0x0b, 0][..], &[0x00, 1][..], &[0x0d, 1, 2][..], &[0xff; 11][..]]
        {
            assert!(fields(bad).is_none(), "{bad:?}");
        }
        assert!(fields(&[]).unwrap().is_empty());
    }
}
