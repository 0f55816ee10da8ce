//! Integration tests of the worker: real SQLite store in a temp dir, local result storage,
//! and the testkit fixture site on 127.0.0.1.

mod budget;
mod cancellation;
mod completion;
mod concurrency;
mod reexecution;
mod shutdown;
mod support;
