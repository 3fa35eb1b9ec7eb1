//! Integration tests that need more than the repository: real etcd and Redis Sentinel binaries,
//! and root for network namespaces. Each test prints `SKIPPED` without what it needs, unless the
//! matching `FAULTLINE_REQUIRE_*` variable is set (README.md, "Optional parts").

#[path = "../common/mod.rs"]
mod common;

mod netns_mode;
mod real_systems;
