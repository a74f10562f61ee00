//! Stages `data.tin_crop` and `data.tin_resize`: the two Tiny ImageNet out-of-distribution sets of
//! the paper's Table 1 (SPEC.md "Out-of-distribution sets").
//!
//! They exist because the paper's OOD sets are 32 x 32 images made from Tiny ImageNet's 64 x 64
//! test images in two ways, a random 32 x 32 crop and a 2 x 2 box-average downsampling, and every
//! model must be scored on the same images. Both variants use the same 1,500 source images and the
//! same test/validation split, so the two sets differ only in how each image was made 32 x 32.
//!
//! Steps (all random choices from `data.ood_seed`, each on its own ChaCha8 stream, see
//! [`super::streams`]):
//! 1. list the source folder (`tiny-imagenet-200/test/images`): files named `test_<n>.JPEG`,
//!    ordered by n ([`list_images`]);
//! 2. sample `data.ood_count` of them without replacement: the first entries of a seeded
//!    permutation of that list (stream `TIN_SAMPLE`, shared by both variants) ([`sample`]);
//! 3. crop only: for each sampled image, in sample order, a top-left row and then column, each
//!    uniform in 0..=32 (stream `TIN_CROP`);
//! 4. split: a seeded permutation of the sample (stream `TIN_SPLIT`, shared); its first
//!    `ood_count - ood_val` entries are the test split, the rest the validation split; within each
//!    split the images are ordered by n ([`split`]);
//! 5. decode each image with zune-jpeg (grayscale JPEGs become RGB by repeating the channel;
//!    anything but 64 x 64 is refused), then crop or resize; values are u8 / 255 as f32.
//!
//! Outputs `tin_crop.safetensors` / `tin_resize.safetensors`: `test_images`, `val_images` (f32
//! `[N, 3, 32, 32]`, channel-major), `test_source`, `val_source` (i64 `[N]`: the n of
//! `test_n.JPEG`), and for the crop `test_offsets`, `val_offsets` (i64 `[N, 2]`: row, column of
//! the patch's top-left corner in the 64 x 64 image).

use crate::config::OodSet;
use crate::stage::StageContext;
use crate::tensors;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use tch::Tensor;
use zune_jpeg::JpegDecoder;
use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

/// The label of the source folder.
pub const SOURCE: &str = "tiny-imagenet-200/test/images";
/// Side of a source image.
pub const SIDE: usize = 64;
/// Side of an output image.
pub const OUT: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// One uniformly random 32 x 32 patch of each image.
    Crop,
    /// Each image downsampled to 32 x 32 by a 2 x 2 box average.
    Resize,
}

impl Variant {
    /// The variant that makes an OOD set of the table; the other sets are not Tiny ImageNet's.
    pub fn of(set: OodSet) -> Result<Variant> {
        match set {
            OodSet::TinCrop => Ok(Self::Crop),
            OodSet::TinResize => Ok(Self::Resize),
            other => anyhow::bail!("{} is not a Tiny ImageNet set", other.name()),
        }
    }

    pub fn ood_set(self) -> OodSet {
        match self {
            Self::Crop => OodSet::TinCrop,
            Self::Resize => OodSet::TinResize,
        }
    }
}

/// The source images of a folder: `(n, path)` of every file named `test_<n>.JPEG`, ordered by n.
/// Other files are ignored; a folder without any such file is an error.
pub fn list_images(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?;
    let mut images = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(digits) = name.strip_prefix("test_").and_then(|s| s.strip_suffix(".JPEG")) else { continue };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let n: u64 =
            digits.parse().with_context(|| format!("{}: number too large", entry.path().display()))?;
        images.push((n, entry.path()));
    }
    images.sort();
    if let Some(w) = images.windows(2).find(|w| w[0].0 == w[1].0) {
        bail!("{} and {} are both image {}", w[0].1.display(), w[1].1.display(), w[0].0);
    }
    if images.is_empty() {
        bail!("{} holds no test_<n>.JPEG image (expected Tiny ImageNet's test/images folder)", dir.display());
    }
    Ok(images)
}

/// Which of `available` images (positions in the sorted list) form the set: the first `count`
/// entries of a permutation from `seed` (stream `TIN_SAMPLE`), in that order.
pub fn sample(available: usize, count: usize, seed: u64) -> Result<Vec<usize>> {
    if count > available {
        bail!(
            "config key data.ood_count = {count}, but the Tiny ImageNet folder has only {available} test_<n>.JPEG images"
        );
    }
    let mut rng = super::rng(seed, super::streams::TIN_SAMPLE);
    Ok(super::permutation_prefix(available, count, &mut rng))
}

/// The crop's top-left (row, column) of each of `count` images, in sample order: each uniform in
/// 0..=32, row first (stream `TIN_CROP`).
pub fn crop_offsets(count: usize, seed: u64) -> Vec<(usize, usize)> {
    let mut rng = super::rng(seed, super::streams::TIN_CROP);
    let range = (SIDE - OUT + 1) as u64;
    (0..count)
        .map(|_| {
            let row = super::uniform_below(&mut rng, range) as usize;
            let col = super::uniform_below(&mut rng, range) as usize;
            (row, col)
        })
        .collect()
}

/// The test and validation splits of `count` sampled images, as positions in the sample: a
/// permutation from `seed` (stream `TIN_SPLIT`); the first `count - val` are test, the rest
/// validation; each split is then sorted ascending (the stage then orders each split by n).
pub fn split(count: usize, val: usize, seed: u64) -> Result<(Vec<usize>, Vec<usize>)> {
    super::check_ood_sizes(count, val)?;
    let mut rng = super::rng(seed, super::streams::TIN_SPLIT);
    Ok(super::sorted_split(count, val, &mut rng))
}

/// Decodes a 64 x 64 JPEG into channel-major RGB bytes (`3 * 64 * 64`: the R plane, then G, then
/// B). A grayscale JPEG's channel is repeated three times. `name` is used in errors.
pub fn decode(bytes: &[u8], name: &str) -> Result<Vec<u8>> {
    let mut decoder = JpegDecoder::new(ZCursor::new(bytes));
    decoder.decode_headers().map_err(|e| anyhow::anyhow!("{name}: not a readable JPEG: {e}"))?;
    let info = decoder.info().with_context(|| format!("{name}: no JPEG header"))?;
    if (info.width as usize, info.height as usize) != (SIDE, SIDE) {
        bail!("{name}: is {}x{}, expected {SIDE}x{SIDE} (a Tiny ImageNet image)", info.width, info.height);
    }
    let gray = decoder.input_colorspace().is_some_and(|c| c.num_components() == 1);
    let out = if gray { ColorSpace::Luma } else { ColorSpace::RGB };
    decoder.set_options(DecoderOptions::default().jpeg_set_out_colorspace(out));
    let pixels = decoder.decode().map_err(|e| anyhow::anyhow!("{name}: JPEG decoding failed: {e}"))?;
    let channels = out.num_components();
    if decoder.output_colorspace() != Some(out) || pixels.len() != SIDE * SIDE * channels {
        bail!(
            "{name}: the decoder gave {} bytes in {:?}, expected {} in {out:?}",
            pixels.len(),
            decoder.output_colorspace(),
            SIDE * SIDE * channels
        );
    }
    let mut planes = vec![0u8; 3 * SIDE * SIDE];
    for c in 0..3 {
        let src = if gray { 0 } else { c };
        for p in 0..SIDE * SIDE {
            planes[c * SIDE * SIDE + p] = pixels[p * channels + src];
        }
    }
    Ok(planes)
}

/// The 32 x 32 patch with top-left corner (row, col) of a decoded image, as f32 u8 / 255,
/// channel-major.
pub fn crop(planes: &[u8], row: usize, col: usize) -> Vec<f32> {
    assert!(row <= SIDE - OUT && col <= SIDE - OUT, "crop offset ({row}, {col}) out of range");
    let mut out = Vec::with_capacity(3 * OUT * OUT);
    for c in 0..3 {
        for r in 0..OUT {
            let start = c * SIDE * SIDE + (row + r) * SIDE + col;
            out.extend(planes[start..start + OUT].iter().map(|&v| v as f32 / 255.0));
        }
    }
    out
}

/// A decoded image downsampled to 32 x 32: each output value is the mean of a 2 x 2 block,
/// (a + b + c + d) / (4 * 255) as f32, channel-major.
pub fn resize(planes: &[u8]) -> Vec<f32> {
    let mut out = Vec::with_capacity(3 * OUT * OUT);
    for c in 0..3 {
        let plane = &planes[c * SIDE * SIDE..(c + 1) * SIDE * SIDE];
        for r in 0..OUT {
            for col in 0..OUT {
                let at = |dr: usize, dc: usize| plane[(2 * r + dr) * SIDE + 2 * col + dc] as u32;
                let sum = at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1);
                out.push(sum as f32 / (4.0 * 255.0));
            }
        }
    }
    out
}

/// The stage: sample, split, decode, crop or resize, write `tin_crop.safetensors` or
/// `tin_resize.safetensors`.
pub fn run(ctx: &StageContext, variant: Variant) -> Result<()> {
    let cfg = &ctx.config.data;
    super::check_ood_sizes(cfg.ood_count, cfg.ood_val)?;
    let dir = ctx.source(SOURCE)?;
    let images = list_images(dir).map_err(super::bad_input)?;
    let chosen = sample(images.len(), cfg.ood_count, cfg.ood_seed)?;
    let offsets = crop_offsets(cfg.ood_count, cfg.ood_seed);
    let (mut test, mut val) = split(cfg.ood_count, cfg.ood_val, cfg.ood_seed)?;
    // Within each split, order by n (the sorted list is ordered by n).
    test.sort_by_key(|&k| chosen[k]);
    val.sort_by_key(|&k| chosen[k]);

    let total = cfg.ood_count as u64;
    let mut done = 0u64;
    let mut make = |positions: &[usize]| -> Result<(Tensor, Tensor, Tensor)> {
        let mut values = Vec::with_capacity(positions.len() * 3 * OUT * OUT);
        let mut sources = Vec::with_capacity(positions.len());
        let mut corners = Vec::with_capacity(positions.len() * 2);
        for &k in positions {
            let (n, path) = &images[chosen[k]];
            let name = format!("{SOURCE}/{}", path.file_name().unwrap_or_default().to_string_lossy());
            let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display())).map_err(super::bad_input)?;
            let planes = decode(&bytes, &name).map_err(super::bad_input)?;
            match variant {
                Variant::Crop => {
                    let (row, col) = offsets[k];
                    values.extend(crop(&planes, row, col));
                    corners.extend([row as i64, col as i64]);
                }
                Variant::Resize => values.extend(resize(&planes)),
            }
            sources.push(*n as i64);
            done += 1;
            if done.is_multiple_of(100) {
                (ctx.progress)(done, total, "decoding images");
            }
        }
        let n = positions.len();
        let corners = Tensor::from_slice(&corners).view([-1, 2]);
        Ok((super::f32_images(&values, n), Tensor::from_slice(&sources), corners))
    };
    let (test_images, test_source, test_offsets) = make(&test)?;
    let (val_images, val_source, val_offsets) = make(&val)?;

    let mut named: Vec<(&str, &Tensor)> = vec![
        ("test_images", &test_images),
        ("test_source", &test_source),
        ("val_images", &val_images),
        ("val_source", &val_source),
    ];
    if variant == Variant::Crop {
        named.push(("test_offsets", &test_offsets));
        named.push(("val_offsets", &val_offsets));
    }
    tensors::write(&ctx.output(&format!("{}.safetensors", variant.ood_set().name())), &named)?;
    (ctx.progress)(total, total, "written");
    Ok(())
}
