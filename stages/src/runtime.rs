//! The libtorch runtime as the worker's probe reports it to the engine: its version (part of every
//! key), the thread count, and what a number depends on beyond its key (the processor, the
//! instruction set ATen uses, the GPU), recorded with every run.

use std::collections::BTreeMap;

unsafe extern "C" {
    fn oodpipe_cpu_capability(buf: *mut std::os::raw::c_char, len: usize) -> usize;
}

/// The instruction set ATen's CPU kernels dispatch to (`at::get_cpu_capability()`: "AVX512",
/// "AVX2", "DEFAULT", ...; `ATEN_CPU_CAPABILITY` can lower it).
pub fn cpu_capability() -> String {
    let mut buf = [0 as std::os::raw::c_char; 64];
    // SAFETY: the shim writes at most buf.len() bytes, NUL-terminated.
    unsafe { oodpipe_cpu_capability(buf.as_mut_ptr(), buf.len()) };
    unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned()
}

/// The processor's model name from /proc/cpuinfo (Linux), else the architecture.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| l.strip_prefix("model name").map(|r| r.trim_start_matches([' ', '\t', ':']).trim().to_string()))
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// What results depend on beyond their keys: bit-for-bit repeatability holds only on the same
/// processor kind, instruction set and thread count (and GPU model and driver on CUDA).
pub fn platform_details(device: &str) -> BTreeMap<String, String> {
    let mut p = BTreeMap::new();
    p.insert("cpu_model".into(), cpu_model());
    p.insert("cpu_capability".into(), cpu_capability());
    p.insert("threads".into(), tch::get_num_threads().to_string());
    p.insert("os".into(), format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH));
    p.insert("libtorch".into(), libtorch_version().to_string());
    p.insert("device".into(), device.to_string());
    if device == "cuda" {
        let query = std::process::Command::new("nvidia-smi")
            .args(["--query-gpu=name,driver_version", "--format=csv,noheader"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").trim().to_string());
        p.insert("gpu".into(), query.unwrap_or_else(|| "unknown (nvidia-smi not found)".into()));
        p.insert("cuda_devices".into(), tch::Cuda::device_count().to_string());
    }
    p
}

/// The libtorch version this binary was built against (read from libtorch's files by build.rs).
pub fn libtorch_version() -> &'static str {
    env!("OODPIPE_LIBTORCH_VERSION")
}

/// Sets libtorch's intra-op threads (0 = leave libtorch's default, one per core).
pub fn set_threads(threads: usize) {
    if threads > 0 {
        tch::set_num_threads(threads as i32);
    }
}
