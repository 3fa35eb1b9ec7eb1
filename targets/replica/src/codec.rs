//! The binary encoding of everything a reference node writes to disk or sends to a peer:
//! one format-version byte, then the value in postcard's wire format.
//!
//! postcard (serde, varint integers, a wire format documented and frozen since its 1.0) encodes
//! log records, snapshot and metadata files, and peer frames. Every encoded blob starts with
//! [`FORMAT_VERSION`], so a file or a peer written by another layout is refused with a message
//! that says so, instead of being misread. Bump it whenever a persisted or sent type changes
//! shape. Data directories live for one run, so there is no migration: a node that finds another
//! version stops, naming the file.
//!
//! postcard, like any non-self-describing format, cannot encode `#[serde(skip_serializing_if)]`,
//! `flatten` or untagged enums: types encoded here must not use them.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The layout of this build's files and frames.
pub const FORMAT_VERSION: u8 = 1;

/// Why a blob could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("empty record: no format version byte")]
    Empty,
    #[error("format version {found}, but this build reads version {FORMAT_VERSION}")]
    Version { found: u8 },
    #[error("{0}")]
    Postcard(#[from] postcard::Error),
    #[error("{0} bytes left over after the value")]
    Trailing(usize),
}

/// Append `value`, version byte first, to `out`.
pub fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
    out.push(FORMAT_VERSION);
    postcard::to_io(value, &mut *out)?;
    Ok(())
}

/// `value`, version byte first.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    encode_into(value, &mut out)?;
    Ok(out)
}

/// Decode a blob written by [`encode`]: the version must be this build's and the value must
/// use every byte.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if version != FORMAT_VERSION {
        return Err(CodecError::Version { found: version });
    }
    let (value, rest) = postcard::take_from_bytes(body)?;
    if !rest.is_empty() {
        return Err(CodecError::Trailing(rest.len()));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::{Command, KvState};

    #[test]
    fn values_round_trip_behind_the_version_byte() {
        let mut state = KvState::new();
        state.apply(&Command::Write {
            key: "k1".into(),
            value: -7,
        });
        let blob = encode(&(9u64, &state, vec![Some("n2".to_string()), None])).unwrap();
        assert_eq!(blob[0], FORMAT_VERSION);
        let (i, s, v): (u64, KvState, Vec<Option<String>>) = decode(&blob).unwrap();
        assert_eq!((i, s, v), (9, state, vec![Some("n2".to_string()), None]));
    }

    #[test]
    fn another_version_an_empty_blob_and_trailing_bytes_are_refused() {
        let mut blob = encode(&42u64).unwrap();
        blob[0] = FORMAT_VERSION + 1;
        let e = decode::<u64>(&blob).unwrap_err();
        assert!(matches!(e, CodecError::Version { found } if found == FORMAT_VERSION + 1));
        assert!(e.to_string().contains("this build reads version"), "{e}");
        assert!(matches!(decode::<u64>(&[]), Err(CodecError::Empty)));
        let mut long = encode(&42u64).unwrap();
        long.push(0);
        assert!(matches!(decode::<u64>(&long), Err(CodecError::Trailing(1))));
        assert!(decode::<String>(&[FORMAT_VERSION, 200]).is_err());
    }
}
