//! Tests of the shared configuration types: secrets never shown, units kept.

mod networks;
mod secret;
mod units;
