//! Webhook throughput of one process's delivery loop (docs/BENCHMARKS.md): filled in below.
fn main() {}
