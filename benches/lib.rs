//! Criterion benchmarks for the workspace; see the `[[bench]]` targets in `Cargo.toml` and
//! `docs/performance.md` for the latest figures and the commands that produced them.
