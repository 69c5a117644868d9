//! Environment values like `TRELLIS_REGISTRATION__TOKEN=1234` arrive as numbers; secrets and
//! tokens are strings whatever they look like.

use serde::{Deserialize, Deserializer};

#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Str(String),
    Int(i64),
    UInt(u64),
    Float(f64),
    Bool(bool),
}

impl Scalar {
    fn into_string(self) -> String {
        match self {
            Scalar::Str(s) => s,
            Scalar::Int(n) => n.to_string(),
            Scalar::UInt(n) => n.to_string(),
            Scalar::Float(n) => n.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Scalar::deserialize(d).map(Scalar::into_string)
}

/// A room version ID (`10`, whether it came as a string or a number); one that is not a room
/// version ID at all fails the load, naming the key.
pub fn room_version<'de, D: Deserializer<'de>>(d: D) -> Result<ruma::RoomVersionId, D::Error> {
    let s = string(d)?;
    ruma::RoomVersionId::try_from(s.as_str())
        .map_err(|e| serde::de::Error::custom(format!("{s:?} is not a room version ID ({e})")))
}

pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<Scalar>::deserialize(d).map(|s| s.map(Scalar::into_string))
}
