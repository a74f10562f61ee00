//! Bakes libtorch's library folder into the test binaries' rpath (see DEVELOPERS.md), and records
//! libtorch's version, which is part of every stage key.
fn main() {
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
        let version_file = std::path::Path::new(&lib).join("..").join("version.py");
        println!("cargo:rerun-if-changed={}", version_file.display());
        let version = std::fs::read_to_string(&version_file)
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("__version__ = ").map(|v| v.trim_matches(['\'', '"']).to_string()))
            })
            .unwrap_or_else(|| "unknown".to_string());
        println!("cargo:rustc-env=OODPIPE_LIBTORCH_VERSION={version}");
    } else {
        println!("cargo:rustc-env=OODPIPE_LIBTORCH_VERSION=unknown");
    }
}
