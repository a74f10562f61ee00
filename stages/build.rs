//! Turns on the detectors' score code (`cfg(oodpipe_compute)`, see detectors/mod.rs); bakes libtorch's library folder into the test binaries' rpath (see DEVELOPERS.md), and records
//! libtorch's version, which is part of every stage key; compiles the shim that asks ATen which
//! instruction set it dispatches to (recorded with every run, see `runtime::platform_details`).
fn main() {
    // detectors/ is compiled here with its score code (and in oodpipe-plan without it).
    println!("cargo::rustc-check-cfg=cfg(oodpipe_compute)");
    println!("cargo:rustc-cfg=oodpipe_compute");
    println!("cargo:rerun-if-changed=cpp/cpu_capability.cpp");
    cc::Build::new().cpp(true).file("cpp/cpu_capability.cpp").flag_if_supported("-std=c++17").compile("oodpipe_cpu_capability");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
        let version_file = std::path::Path::new(&lib).join("..").join("version.py");
        println!("cargo:rerun-if-changed={}", version_file.display());
        let version = std::fs::read_to_string(&version_file)
            .ok()
            .and_then(|text| text.lines().find_map(|l| l.strip_prefix("__version__ = ").map(|v| v.trim_matches(['\'', '"']).to_string())))
            .unwrap_or_else(|| "unknown".to_string());
        println!("cargo:rustc-env=OODPIPE_LIBTORCH_VERSION={version}");
    } else {
        println!("cargo:rustc-env=OODPIPE_LIBTORCH_VERSION=unknown");
    }
}
