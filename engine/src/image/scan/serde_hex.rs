//! Serde helpers: 32-byte hashes and byte strings as lowercase hex in JSON.

use serde::{Deserialize, Deserializer, Serializer};

/// `[u8; 32]` as 64 hex digits.
pub mod hash32 {
    use super::*;

    /// Serialises as hex.
    pub fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    /// Parses 64 hex digits.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(&text, &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

/// A map of path to bytes, the bytes as hex.
pub mod bytes_map {
    use super::*;
    use std::collections::BTreeMap;

    /// Serialises each value as hex.
    pub fn serialize<S: Serializer>(
        v: &BTreeMap<String, Vec<u8>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(v.len()))?;
        for (k, bytes) in v {
            map.serialize_entry(k, &hex::encode(bytes))?;
        }
        map.end()
    }

    /// Parses hex values.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, Vec<u8>>, D::Error> {
        let text = BTreeMap::<String, String>::deserialize(d)?;
        text.into_iter()
            .map(|(k, v)| {
                hex::decode(&v)
                    .map(|b| (k, b))
                    .map_err(serde::de::Error::custom)
            })
            .collect()
    }
}
