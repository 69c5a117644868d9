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
        encode_str(self, out);
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

/// A string key part: its bytes, `00` escaped as `00 FF`, then the terminator `00 00`.
fn encode_str(s: &str, out: &mut Vec<u8>) {
    for &b in s.as_bytes() {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

/// A key, or a borrowed form of one, that encodes to the bytes of [`KeyEncode::Key`]: what the
/// storage API takes for lookups and writes, so `get(USERS, user_id)` needs no owned copy of a
/// `&UserId` and `(&UserId, &DeviceId)` looks up an `(OwnedUserId, OwnedDeviceId)` key.
pub trait KeyEncode {
    /// The stored key type this encodes as.
    type Key: KeyCodec;

    fn encode_key_into(&self, out: &mut Vec<u8>);
    /// The encoding of the key's [`KeyCodec::Head`] (a prefix of [`KeyEncode::encode_key_into`]).
    fn encode_key_head_into(&self, out: &mut Vec<u8>);

    fn encode_key(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        self.encode_key_into(&mut out);
        out
    }
}

impl<Q: KeyEncode + ?Sized> KeyEncode for &Q {
    type Key = Q::Key;

    fn encode_key_into(&self, out: &mut Vec<u8>) {
        (**self).encode_key_into(out);
    }
    fn encode_key_head_into(&self, out: &mut Vec<u8>) {
        (**self).encode_key_head_into(out);
    }
}

/// `KeyEncode` for a key type that is its own (single-part) head.
macro_rules! key_encode_leaf {
    ($($owned:ty),* $(,)?) => {$(
        impl KeyEncode for $owned {
            type Key = $owned;

            fn encode_key_into(&self, out: &mut Vec<u8>) {
                self.encode_into(out);
            }
            fn encode_key_head_into(&self, out: &mut Vec<u8>) {
                self.encode_into(out);
            }
        }
    )*};
}
key_encode_leaf!(String, u64, ());

impl KeyEncode for str {
    type Key = String;

    fn encode_key_into(&self, out: &mut Vec<u8>) {
        encode_str(self, out);
    }
    fn encode_key_head_into(&self, out: &mut Vec<u8>) {
        encode_str(self, out);
    }
}

/// ruma's identifiers as key parts: the same bytes as their string form (so the layout on disk
/// is that of a `String` key), checked again by ruma when read back. The borrowed form
/// (`UserId` for `OwnedUserId`) encodes as the owned one.
macro_rules! id_key {
    ($($owned:ty => $borrowed:ty),* $(,)?) => {$(
        impl KeyCodec for $owned {
            type Head = $owned;

            fn encode_head_into(&self, out: &mut Vec<u8>) {
                self.encode_into(out);
            }
            fn encode_into(&self, out: &mut Vec<u8>) {
                encode_str(self.as_str(), out);
            }
            fn decode_from(input: &mut &[u8]) -> Result<Self> {
                let s = String::decode_from(input)?;
                <$owned>::try_from(s).map_err(|e| {
                    Error::internal(format!("key codec: not a valid {}: {e}", stringify!($borrowed)))
                })
            }
        }

        key_encode_leaf!($owned);

        impl KeyEncode for $borrowed {
            type Key = $owned;

            fn encode_key_into(&self, out: &mut Vec<u8>) {
                encode_str(self.as_str(), out);
            }
            fn encode_key_head_into(&self, out: &mut Vec<u8>) {
                encode_str(self.as_str(), out);
            }
        }

        impl JsonValue for $owned {}
    )*};
}
id_key!(
    ruma::OwnedUserId => ruma::UserId,
    ruma::OwnedRoomId => ruma::RoomId,
    ruma::OwnedEventId => ruma::EventId,
    ruma::OwnedDeviceId => ruma::DeviceId,
    ruma::OwnedServerName => ruma::ServerName,
    ruma::OwnedRoomAliasId => ruma::RoomAliasId,
    ruma::OwnedTransactionId => ruma::TransactionId,
);

impl<QA: KeyEncode, QB: KeyEncode> KeyEncode for (QA, QB) {
    type Key = (QA::Key, QB::Key);

    fn encode_key_into(&self, out: &mut Vec<u8>) {
        self.0.encode_key_into(out);
        self.1.encode_key_into(out);
    }
    fn encode_key_head_into(&self, out: &mut Vec<u8>) {
        self.0.encode_key_into(out);
    }
}

impl<QA: KeyEncode, QB: KeyEncode, QC: KeyEncode> KeyEncode for (QA, QB, QC) {
    type Key = (QA::Key, QB::Key, QC::Key);

    fn encode_key_into(&self, out: &mut Vec<u8>) {
        self.0.encode_key_into(out);
        self.1.encode_key_into(out);
        self.2.encode_key_into(out);
    }
    fn encode_key_head_into(&self, out: &mut Vec<u8>) {
        self.0.encode_key_into(out);
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

// Key parts of the users, devices, keys and ephemeral tables.

/// An optional room as a key part: `None` (global account data) is the empty string, a room its
/// ID, so the bytes are those of the `String` key written before (`""` for global).
impl KeyCodec for Option<ruma::OwnedRoomId> {
    type Head = Option<ruma::OwnedRoomId>;

    fn encode_head_into(&self, out: &mut Vec<u8>) {
        self.encode_into(out);
    }
    fn encode_into(&self, out: &mut Vec<u8>) {
        encode_str(self.as_ref().map_or("", |r| r.as_str()), out);
    }
    fn decode_from(input: &mut &[u8]) -> Result<Self> {
        let s = String::decode_from(input)?;
        if s.is_empty() {
            return Ok(None);
        }
        ruma::OwnedRoomId::try_from(s)
            .map(Some)
            .map_err(|e| Error::internal(format!("key codec: not a valid RoomId: {e}")))
    }
}

key_encode_leaf!(Option<ruma::OwnedRoomId>);

impl KeyEncode for Option<&ruma::RoomId> {
    type Key = Option<ruma::OwnedRoomId>;

    fn encode_key_into(&self, out: &mut Vec<u8>) {
        encode_str(self.map_or("", |r| r.as_str()), out);
    }
    fn encode_key_head_into(&self, out: &mut Vec<u8>) {
        self.encode_key_into(out);
    }
}

/// ruma's string enums (`m.read`, ...) as key parts: the bytes of their string form.
macro_rules! str_enum_key {
    ($($ty:ty),* $(,)?) => {$(
        impl KeyCodec for $ty {
            type Head = $ty;

            fn encode_head_into(&self, out: &mut Vec<u8>) {
                self.encode_into(out);
            }
            fn encode_into(&self, out: &mut Vec<u8>) {
                encode_str(self.as_str(), out);
            }
            fn decode_from(input: &mut &[u8]) -> Result<Self> {
                Ok(<$ty>::from(String::decode_from(input)?))
            }
        }

        key_encode_leaf!($ty);
    )*};
}
str_enum_key!(ruma::events::receipt::ReceiptType);

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

    #[test]
    fn ids_encode_as_their_strings_and_borrowed_forms_as_owned_ones() {
        let user = ruma::user_id!("@alice:example.org");
        let device = ruma::device_id!("ABC\0D");
        let as_strings = (user.to_string(), device.to_string()).encode();
        let typed = (user.to_owned(), device.to_owned());
        assert_eq!(typed.encode(), as_strings);
        assert_eq!((user, device).encode_key(), as_strings);
        assert_eq!(<(ruma::OwnedUserId, ruma::OwnedDeviceId)>::decode(&as_strings).unwrap(), typed);
        let mut head = Vec::new();
        (user, device).encode_key_head_into(&mut head);
        assert_eq!(head, user.to_string().encode());
        assert!(<ruma::OwnedUserId as KeyCodec>::decode(&"not a user".to_string().encode()).is_err());
    }

    #[test]
    fn optional_rooms_and_receipt_types_encode_as_their_strings() {
        use ruma::events::receipt::ReceiptType;
        let room = ruma::room_id!("!r:example.org");
        assert_eq!(Some(room.to_owned()).encode(), room.to_string().encode());
        assert_eq!(Some(room).encode_key(), room.to_string().encode());
        assert_eq!(None::<ruma::OwnedRoomId>.encode(), String::new().encode());
        assert_eq!(None::<&ruma::RoomId>.encode_key(), String::new().encode());
        assert_eq!(<Option<ruma::OwnedRoomId>>::decode(&String::new().encode()).unwrap(), None);
        assert_eq!(<Option<ruma::OwnedRoomId>>::decode(&room.to_string().encode()).unwrap().as_deref(), Some(room));
        assert_eq!(ReceiptType::ReadPrivate.encode(), "m.read.private".to_string().encode());
        assert_eq!(<ReceiptType as KeyCodec>::decode(&"m.read".to_string().encode()).unwrap(), ReceiptType::Read);
    }
}
