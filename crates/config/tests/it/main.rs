//! Tests of the shared configuration types: secrets never shown, units kept.

#![allow(clippy::expect_used)]

mod networks;
mod secret;
mod units;
