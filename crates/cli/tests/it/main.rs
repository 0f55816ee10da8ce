//! End-to-end tests of the `selextract` binary as a real process.

mod scrape;
