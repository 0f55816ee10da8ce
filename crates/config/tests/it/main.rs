//! Tests of the shared configuration types: secrets never shown, units kept.

mod secret;
mod units;
