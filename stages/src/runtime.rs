//! The libtorch runtime as the engine needs to know it: its version (part of every key), the
//! device that "auto" resolves to, and the thread count.

/// The libtorch version this binary was built against (read from libtorch's files by build.rs).
pub fn libtorch_version() -> &'static str {
    env!("OODPIPE_LIBTORCH_VERSION")
}

/// Resolves the config's "cpu" / "cuda" / "auto" to the device stages will use.
pub fn resolve_device(wanted: &str) -> anyhow::Result<&'static str> {
    match wanted {
        "cpu" => Ok("cpu"),
        "cuda" if tch::Cuda::is_available() => Ok("cuda"),
        "cuda" => anyhow::bail!("config key device = \"cuda\", but libtorch finds no CUDA device here"),
        "auto" => Ok(if tch::Cuda::is_available() { "cuda" } else { "cpu" }),
        other => anyhow::bail!("config key device = {other:?}: expected \"cpu\", \"cuda\" or \"auto\""),
    }
}

/// Sets libtorch's intra-op threads (0 = leave libtorch's default, one per core).
pub fn set_threads(threads: usize) {
    if threads > 0 {
        tch::set_num_threads(threads as i32);
    }
}
