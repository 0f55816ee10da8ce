//! `serde(with = …)` modules for settings written as integers in a unit named by the key
//! (`connect_timeout_ms = 10000`) and held as a `Duration` or a byte count. Each reads a
//! non-negative integer and writes the same integer back, so a printed configuration keeps
//! the keys and numbers the operator wrote; values that would overflow are errors.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

const MIB: u64 = 1024 * 1024;

fn read<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    u64::deserialize(deserializer)
}

fn scaled<E: serde::de::Error>(value: u64, unit: u64, what: &str) -> Result<u64, E> {
    value
        .checked_mul(unit)
        .ok_or_else(|| E::custom(format!("{value} {what} is too large")))
}

/// Milliseconds (`*_ms` keys).
pub mod duration_ms {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(value.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        read(deserializer).map(Duration::from_millis)
    }
}

/// Whole seconds (`*_seconds` keys).
pub mod duration_seconds {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(value.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        read(deserializer).map(Duration::from_secs)
    }
}

/// Whole minutes (`*_minutes` keys).
pub mod duration_minutes {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(value.as_secs() / 60)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let minutes = read(deserializer)?;
        scaled::<D::Error>(minutes, 60, "minutes").map(Duration::from_secs)
    }
}

/// Mebibytes (`*_mb` keys) held as bytes.
pub mod mebibytes {
    use super::*;

    pub fn serialize<S: Serializer>(bytes: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(bytes / MIB)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        let megabytes = read(deserializer)?;
        scaled::<D::Error>(megabytes, MIB, "MB")
    }
}
