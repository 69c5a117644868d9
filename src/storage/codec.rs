//! Typed key and value codecs. Keys encode so that byte order equals tuple order, which makes
//! prefix scans (`(user_id, *)`) and range scans (`(user_id, stream_pos > n)`) possible.
//!
//! Strings end with `00 00`; a `00` byte inside a string is escaped as `00 FF`. Integers are
//! 8-byte big-endian. Tuples concatenate their parts.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

pub trait KeyCodec: Sized {
    /// The key's first part (the whole key for a single value): the entity per-entity write
    /// marks are kept for ([`crate::storage::Storage::mark`]).
    type Head: KeyCodec;

    fn encode_into(&self, out: &mut Vec<u8>);
    fn decode_from(input: &mut &[u8]) -> Result<Self>;
    /// Encode [`KeyCodec::Head`] only (a prefix of [`KeyCodec::encode_into`]'s output).
    fn encode_head_into(&self, out: &mut Vec<u8>);

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        self.encode_into(&mut out);
        out
    }

    fn decode(mut input: &[u8]) -> Result<Self> {
        let key = Self::decode_from(&mut input)?;
        if !input.is_empty() {
            return Err(Error::internal("key codec: trailing bytes"));
        }
        Ok(key)
    }
}

impl KeyCodec for String {
    type Head = String;

    fn encode_head_into(&self, out: &mut Vec<u8>) {
        self.encode_into(out);
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        for &b in self.as_bytes() {
            out.push(b);
            if b == 0 {
                out.push(0xFF);
            }
        }
        out.extend_from_slice(&[0, 0]);
    }

    fn decode_from(input: &mut &[u8]) -> Result<Self> {
        let mut bytes = Vec::new();
        let mut i = 0;
        loop {
            match input.get(i..i + 2) {
                Some([0, 0]) => break,
                Some([0, 0xFF]) => {
                    bytes.push(0);
                    i += 2;
                }
                _ => match input.get(i) {
                    Some(&b) if b != 0 => {
                        bytes.push(b);
                        i += 1;
                    }
                    _ => return Err(Error::internal("key codec: unterminated string")),
                },
            }
        }
        *input = &input[i + 2..];
        String::from_utf8(bytes).map_err(|_| Error::internal("key codec: string is not UTF-8"))
    }
}

impl KeyCodec for u64 {
    type Head = u64;

    fn encode_head_into(&self, out: &mut Vec<u8>) {
        self.encode_into(out);
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }

    fn decode_from(input: &mut &[u8]) -> Result<Self> {
        let (head, rest) = input.split_first_chunk::<8>().ok_or_else(|| Error::internal("key codec: short u64"))?;
        *input = rest;
        Ok(u64::from_be_bytes(*head))
    }
}

/// The empty prefix: encodes to no bytes, so `scan_from(table, &(), &start, ..)` walks a whole
/// table from `start` (e.g. a table keyed by stream position alone).
impl KeyCodec for () {
    type Head = ();

    fn encode_head_into(&self, _out: &mut Vec<u8>) {}
    fn encode_into(&self, _out: &mut Vec<u8>) {}
    fn decode_from(_input: &mut &[u8]) -> Result<Self> {
        Ok(())
    }
}

impl<A: KeyCodec, B: KeyCodec> KeyCodec for (A, B) {
    type Head = A;

    fn encode_head_into(&self, out: &mut Vec<u8>) {
        self.0.encode_into(out);
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        self.0.encode_into(out);
        self.1.encode_into(out);
    }
    fn decode_from(input: &mut &[u8]) -> Result<Self> {
        Ok((A::decode_from(input)?, B::decode_from(input)?))
    }
}

impl<A: KeyCodec, B: KeyCodec, C: KeyCodec> KeyCodec for (A, B, C) {
    type Head = A;

    fn encode_head_into(&self, out: &mut Vec<u8>) {
        self.0.encode_into(out);
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        self.0.encode_into(out);
        self.1.encode_into(out);
        self.2.encode_into(out);
    }
    fn decode_from(input: &mut &[u8]) -> Result<Self> {
        Ok((A::decode_from(input)?, B::decode_from(input)?, C::decode_from(input)?))
    }
}

/// Values: JSON for records (readable with `ldb`, tolerant of added fields), raw BE for counters.
pub trait ValueCodec: Sized {
    fn encode_value(&self) -> Vec<u8>;
    fn decode_value(bytes: &[u8]) -> Result<Self>;
}

/// Marker for types stored as JSON.
pub trait JsonValue: Serialize + DeserializeOwned {}

impl JsonValue for serde_json::Value {}
impl JsonValue for String {}

impl<T: JsonValue> ValueCodec for T {
    fn encode_value(&self) -> Vec<u8> {
        // Serialising our own records cannot fail: they have string keys only.
        serde_json::to_vec(self).unwrap_or_default()
    }
    fn decode_value(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| Error::internal(format!("value codec: {e}")))
    }
}

/// A counter value: 8 bytes big-endian (merged with `max` in the `counters` table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter(pub u64);

impl ValueCodec for Counter {
    fn encode_value(&self) -> Vec<u8> {
        self.0.to_be_bytes().to_vec()
    }
    fn decode_value(bytes: &[u8]) -> Result<Self> {
        let arr: [u8; 8] = bytes.try_into().map_err(|_| Error::internal("counter: not 8 bytes"))?;
        Ok(Counter(u64::from_be_bytes(arr)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuple_order_is_byte_order() {
        let keys = [
            ("@a:x".to_string(), 2u64),
            ("@a:x".to_string(), 10u64),
            ("@a:xy".to_string(), 1u64),
            ("@b:x".to_string(), 0u64),
        ];
        let encoded: Vec<_> = keys.iter().map(KeyCodec::encode).collect();
        let mut sorted = encoded.clone();
        sorted.sort();
        assert_eq!(encoded, sorted);
        for (k, e) in keys.iter().zip(&encoded) {
            assert_eq!(&<(String, u64)>::decode(e).unwrap(), k);
        }
    }

    #[test]
    fn strings_with_nul_round_trip_and_do_not_collide() {
        let a = ("a\0b".to_string(), "c".to_string());
        let b = ("a".to_string(), "b\0c".to_string());
        assert_ne!(a.encode(), b.encode());
        assert_eq!(<(String, String)>::decode(&a.encode()).unwrap(), a);
        assert_eq!(<(String, String)>::decode(&b.encode()).unwrap(), b);
        assert!(<String as KeyCodec>::decode(b"abc").is_err());
    }
}
