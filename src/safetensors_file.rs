//! Reading one tensor of a safetensors file, without libtorch.
//!
//! `oodpipe diff` pairs two sides' stored scores and network outputs, which the stages write as
//! safetensors; the command does not link libtorch, and the files it reads here can be large (the
//! CIFAR-10 splits are 185 MB, of which it wants the 10,000 test labels). So this reads only the
//! header and the one tensor asked for, by seeking. The format (huggingface/safetensors): an
//! 8-byte little-endian header length N, N bytes of JSON mapping each tensor's name to its
//! `dtype`, `shape` and `data_offsets` [begin, end) into the bytes after the header (plus an
//! optional `__metadata__` entry), then those bytes, little-endian and row-major.

use anyhow::{Context, bail};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// A tensor's shape and its values, widened to f64 (exact for every dtype read here).
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub values: Vec<f64>,
}

/// Above this a header is not a header: a damaged or foreign file.
const MAX_HEADER: u64 = 100 << 20;

/// Tensor `name` of the safetensors file at `path`: dtypes F64, F32, I64, I32 and U8.
pub fn read(path: &Path, name: &str) -> anyhow::Result<Tensor> {
    let what = || format!("{}: tensor `{name}`", path.display());
    let mut file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).with_context(|| format!("{}: no safetensors header", path.display()))?;
    let header_len = u64::from_le_bytes(len);
    if header_len > MAX_HEADER {
        bail!("{}: a header of {header_len} bytes: not a safetensors file", path.display());
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header).with_context(|| format!("{}: truncated header", path.display()))?;
    let header: serde_json::Value =
        serde_json::from_slice(&header).with_context(|| format!("{}: the header is not JSON", path.display()))?;
    let Some(info) = header.get(name) else {
        let names: Vec<&String> = header.as_object().map(|o| o.keys().filter(|k| *k != "__metadata__").collect()).unwrap_or_default();
        bail!("{}: no tensor `{name}` (it has {names:?})", path.display());
    };
    let dtype = info["dtype"].as_str().with_context(|| format!("{}: no dtype", what()))?;
    let shape: Vec<usize> = info["shape"]
        .as_array()
        .and_then(|s| s.iter().map(|d| d.as_u64().map(|d| d as usize)).collect())
        .with_context(|| format!("{}: no shape", what()))?;
    let offsets: Vec<u64> = info["data_offsets"]
        .as_array()
        .and_then(|o| o.iter().map(|x| x.as_u64()).collect())
        .filter(|o: &Vec<u64>| o.len() == 2 && o[0] <= o[1])
        .with_context(|| format!("{}: no data_offsets [begin, end]", what()))?;
    let width = match dtype {
        "F64" | "I64" => 8,
        "F32" | "I32" => 4,
        "U8" => 1,
        other => bail!("{}: dtype {other}, expected F64, F32, I64, I32 or U8", what()),
    };
    let count: usize = shape.iter().product();
    let bytes = offsets[1] - offsets[0];
    if bytes != (count * width) as u64 {
        bail!("{}: {bytes} bytes of data for shape {shape:?} of {dtype}", what());
    }
    file.seek(SeekFrom::Start(8 + header_len + offsets[0]))?;
    let mut data = vec![0u8; bytes as usize];
    file.read_exact(&mut data).with_context(|| format!("{}: the file ends inside the tensor", what()))?;
    let values = match dtype {
        "F64" => data.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect(),
        "I64" => data.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")) as f64).collect(),
        "F32" => data.chunks_exact(4).map(|c| f64::from(f32::from_le_bytes(c.try_into().expect("4 bytes")))).collect(),
        "I32" => data.chunks_exact(4).map(|c| f64::from(i32::from_le_bytes(c.try_into().expect("4 bytes")))).collect(),
        _ => data.iter().map(|&b| f64::from(b)).collect(),
    };
    Ok(Tensor { shape, values })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file laid out by hand from the format's description: two tensors, data in the order
    /// opposite to the header's, and a metadata entry.
    fn handmade(dir: &Path) -> std::path::PathBuf {
        let mut data = Vec::new();
        for x in [1.5f32, -2.0, 0.25, 8.0, 3.0, -0.5] {
            data.extend_from_slice(&x.to_le_bytes());
        }
        for x in [7i64, -3] {
            data.extend_from_slice(&x.to_le_bytes());
        }
        let header = r#"{"__metadata__":{"by":"hand"},"labels":{"dtype":"I64","shape":[2],"data_offsets":[24,40]},"logits":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&data);
        let path = dir.join("t.safetensors");
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn reads_each_tensor_of_a_handmade_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = handmade(dir.path());
        assert_eq!(read(&path, "logits").unwrap(), Tensor { shape: vec![2, 3], values: vec![1.5, -2.0, 0.25, 8.0, 3.0, -0.5] });
        assert_eq!(read(&path, "labels").unwrap(), Tensor { shape: vec![2], values: vec![7.0, -3.0] });
    }

    #[test]
    fn a_missing_tensor_or_a_damaged_file_names_the_file_and_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let path = handmade(dir.path());
        let err = read(&path, "scores").unwrap_err().to_string();
        assert!(err.contains("t.safetensors") && err.contains("no tensor `scores`") && err.contains("logits"), "{err}");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 4]).unwrap();
        let err = format!("{:#}", read(&path, "labels").unwrap_err());
        assert!(err.contains("ends inside the tensor"), "{err}");
        std::fs::write(&path, u64::MAX.to_le_bytes()).unwrap();
        let err = read(&path, "labels").unwrap_err().to_string();
        assert!(err.contains("not a safetensors file"), "{err}");
    }
}
