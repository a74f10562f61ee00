//! Image-folder OOD sets (`kind = "image_folder"`): a folder of JPEG or PNG images of any size,
//! colour or greyscale, made 32 x 32 by a random crop or by averaging down. The paper's two Tiny
//! ImageNet sets are the two transforms of Tiny ImageNet's 64 x 64 test images.
//!
//! Steps (all random choices from the set's seed, each on its own ChaCha8 stream, see
//! [`super::streams`]); two sets on one folder with one seed, like the paper's crop and resize,
//! therefore use the same images and the same split:
//! 1. list the folder: every `.jpg`, `.jpeg` or `.png` file (any case), in natural order of the
//!    file name (digits compared as numbers: `test_2.JPEG` before `test_10.JPEG`) ([`list_images`]);
//! 2. sample `count` of them without replacement: the first entries of a seeded permutation of that
//!    list (stream `FOLDER_SAMPLE`) ([`sample`]);
//! 3. crop only: for each sampled image, in sample order, a top-left row in 0..=(height - 32) and
//!    then a column in 0..=(width - 32) (stream `FOLDER_CROP`);
//! 4. split: a seeded permutation of the sample (stream `FOLDER_SPLIT`); its first `count - val`
//!    entries are the test split, the rest the validation split; within each split the images keep
//!    the listing's order ([`split`]);
//! 5. decode ([`decode`]; greyscale becomes RGB by repeating the channel, alpha is dropped, 16-bit
//!    PNG keeps its high byte), then crop or resize ([`resize`]: each output pixel is the mean of
//!    the source area it covers, exactly the 2 x 2 box average for 64 x 64 images); values are
//!    u8 / 255 as f32.
//!
//! An unreadable image, an image too small to crop, or a folder without images is refused,
//! naming the file.

use crate::ood::OodSet;
use crate::stage::ProgressFn;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use tch::Tensor;
use zune_jpeg::JpegDecoder;
use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

/// How an image becomes 32 x 32 (`transform = "crop"` or `"resize"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    /// A uniformly random 32 x 32 patch (images must be at least 32 x 32).
    Crop,
    /// The whole image averaged down to 32 x 32 (area averaging; a 2 x 2 box for 64 x 64 images).
    Resize,
}

/// Side of an output image.
pub const OUT: usize = 32;

/// The images of a folder, in natural order of their names. A folder without any is an error.
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?;
    let mut images = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let path = entry.path();
        let is_image =
            path.extension().and_then(|e| e.to_str()).is_some_and(|e| ["jpg", "jpeg", "png"].contains(&e.to_ascii_lowercase().as_str()));
        if is_image && path.is_file() {
            images.push(path);
        }
    }
    images.sort_by(|a, b| natural_key(a).cmp(&natural_key(b)).then_with(|| a.cmp(b)));
    if images.is_empty() {
        bail!("{} holds no image (expected .jpg, .jpeg or .png files)", dir.display());
    }
    Ok(images)
}

/// A file name split into text and numbers, so that numbers compare by value.
fn natural_key(path: &Path) -> Vec<(String, u128)> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut key = Vec::new();
    let mut text = String::new();
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            let mut digits = c.to_string();
            while let Some(d) = chars.next_if(|d| d.is_ascii_digit()) {
                digits.push(d);
            }
            key.push((std::mem::take(&mut text), digits.parse().unwrap_or(u128::MAX)));
        } else {
            text.push(c);
        }
    }
    key.push((text, 0));
    key
}

/// Which of `available` images (positions in the listing) form the set: the first `count`
/// entries of a permutation from `seed` (stream `FOLDER_SAMPLE`), in that order.
pub fn sample(available: usize, count: usize, seed: u64, folder: &Path) -> Result<Vec<usize>> {
    if count > available {
        bail!("the OOD set asks for {count} images, but {} has only {available}", folder.display());
    }
    let mut rng = super::rng(seed, super::streams::FOLDER_SAMPLE);
    Ok(super::permutation_prefix(available, count, &mut rng))
}

/// The crop's top-left (row, column) of each image, given each one's (height, width) in sample
/// order: row uniform in 0..=height-32, then column in 0..=width-32 (stream `FOLDER_CROP`).
pub fn crop_offsets(sizes: &[(usize, usize)], seed: u64) -> Vec<(usize, usize)> {
    let mut rng = super::rng(seed, super::streams::FOLDER_CROP);
    sizes
        .iter()
        .map(|&(h, w)| {
            let row = super::uniform_below(&mut rng, (h - OUT + 1) as u64) as usize;
            let col = super::uniform_below(&mut rng, (w - OUT + 1) as u64) as usize;
            (row, col)
        })
        .collect()
}

/// The test and validation splits of `count` sampled images, as positions in the sample: a
/// permutation from `seed` (stream `FOLDER_SPLIT`); the first `count - val` are test, the rest
/// validation; each split sorted ascending.
pub fn split(count: usize, val: usize, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut rng = super::rng(seed, super::streams::FOLDER_SPLIT);
    super::sorted_split(count, val, &mut rng)
}

/// A decoded image: channel-major RGB bytes (`3 * height * width`: the R plane, then G, then B).
pub struct Planes {
    pub height: usize,
    pub width: usize,
    pub bytes: Vec<u8>,
}

fn is_png(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x89PNG\r\n\x1a\n")
}

/// The (height, width) of a JPEG or PNG, from its header. `name` is used in errors.
pub fn dimensions(bytes: &[u8], name: &str) -> Result<(usize, usize)> {
    if is_png(bytes) {
        let mut decoder = zune_png::PngDecoder::new(ZCursor::new(bytes));
        decoder.decode_headers().map_err(|e| anyhow::anyhow!("{name}: not a readable PNG: {e:?}"))?;
        let (w, h) = decoder.dimensions().with_context(|| format!("{name}: no PNG header"))?;
        Ok((h, w))
    } else {
        let mut decoder = JpegDecoder::new(ZCursor::new(bytes));
        decoder.decode_headers().map_err(|e| anyhow::anyhow!("{name}: not a readable JPEG or PNG: {e}"))?;
        let info = decoder.info().with_context(|| format!("{name}: no JPEG header"))?;
        Ok((info.height as usize, info.width as usize))
    }
}

/// Decodes a JPEG or PNG into channel-major RGB bytes. Greyscale is repeated into the three
/// channels; alpha is dropped; 16-bit samples keep their high byte. `name` is used in errors.
pub fn decode(bytes: &[u8], name: &str) -> Result<Planes> {
    let (height, width) = dimensions(bytes, name)?;
    let (pixels, channels) = if is_png(bytes) {
        let options = DecoderOptions::default().png_set_strip_to_8bit(true).png_set_add_alpha_channel(false);
        let mut decoder = zune_png::PngDecoder::new_with_options(ZCursor::new(bytes), options);
        let pixels = decoder.decode_raw().map_err(|e| anyhow::anyhow!("{name}: PNG decoding failed: {e:?}"))?;
        let colour = decoder.colorspace().with_context(|| format!("{name}: no PNG colour space"))?;
        (pixels, colour.num_components())
    } else {
        let mut decoder = JpegDecoder::new(ZCursor::new(bytes));
        decoder.decode_headers().map_err(|e| anyhow::anyhow!("{name}: not a readable JPEG: {e}"))?;
        let gray = decoder.input_colorspace().is_some_and(|c| c.num_components() == 1);
        let out = if gray { ColorSpace::Luma } else { ColorSpace::RGB };
        decoder.set_options(DecoderOptions::default().jpeg_set_out_colorspace(out));
        let pixels = decoder.decode().map_err(|e| anyhow::anyhow!("{name}: JPEG decoding failed: {e}"))?;
        if decoder.output_colorspace() != Some(out) {
            bail!("{name}: the decoder gave {:?}, expected {out:?}", decoder.output_colorspace());
        }
        (pixels, out.num_components())
    };
    let area = height * width;
    if pixels.len() != area * channels || channels == 0 {
        bail!("{name}: the decoder gave {} bytes, expected {} ({width}x{height}, {channels} channels)", pixels.len(), area * channels);
    }
    // Greyscale (with or without alpha) repeats its one channel; colour takes R, G, B.
    let gray = channels <= 2;
    let mut planes = vec![0u8; 3 * area];
    for c in 0..3 {
        let src = if gray { 0 } else { c };
        for p in 0..area {
            planes[c * area + p] = pixels[p * channels + src];
        }
    }
    Ok(Planes { height, width, bytes: planes })
}

/// The 32 x 32 patch with top-left corner (row, col), as f32 u8 / 255, channel-major.
pub fn crop(image: &Planes, row: usize, col: usize) -> Vec<f32> {
    let (h, w) = (image.height, image.width);
    assert!(row + OUT <= h && col + OUT <= w, "crop offset ({row}, {col}) out of range of {w}x{h}");
    let mut out = Vec::with_capacity(3 * OUT * OUT);
    for c in 0..3 {
        for r in 0..OUT {
            let start = c * h * w + (row + r) * w + col;
            out.extend(image.bytes[start..start + OUT].iter().map(|&v| v as f32 / 255.0));
        }
    }
    out
}

/// An image averaged down (or up) to 32 x 32: each output pixel is the mean of the source area
/// it covers. When both sides are multiples of 32 that is a whole-pixel box average, computed
/// exactly as (sum of the bytes) / (box area * 255) in f32 (the paper's 2 x 2 box for 64 x 64);
/// otherwise each source pixel is weighted by the fraction of it the output pixel covers, in f64.
pub fn resize(image: &Planes) -> Vec<f32> {
    let (h, w) = (image.height, image.width);
    let mut out = Vec::with_capacity(3 * OUT * OUT);
    if h % OUT == 0 && w % OUT == 0 {
        let (fh, fw) = (h / OUT, w / OUT);
        for c in 0..3 {
            let plane = &image.bytes[c * h * w..(c + 1) * h * w];
            for r in 0..OUT {
                for col in 0..OUT {
                    let mut sum = 0u32;
                    for dr in 0..fh {
                        for dc in 0..fw {
                            sum += plane[(fh * r + dr) * w + fw * col + dc] as u32;
                        }
                    }
                    out.push(sum as f32 / ((fh * fw) as f32 * 255.0));
                }
            }
        }
        return out;
    }
    // Weights of source pixels 0..n along one axis for output pixel i of OUT.
    let weights = |n: usize, i: usize| -> Vec<(usize, f64)> {
        let scale = n as f64 / OUT as f64;
        let (lo, hi) = (i as f64 * scale, (i + 1) as f64 * scale);
        (lo.floor() as usize..(hi.ceil() as usize).min(n))
            .map(|p| (p, ((p + 1) as f64).min(hi) - (p as f64).max(lo)))
            .filter(|&(_, wgt)| wgt > 0.0)
            .collect()
    };
    for c in 0..3 {
        let plane = &image.bytes[c * h * w..(c + 1) * h * w];
        for r in 0..OUT {
            let rows = weights(h, r);
            for col in 0..OUT {
                let cols = weights(w, col);
                let (mut sum, mut area) = (0.0f64, 0.0f64);
                for &(y, wy) in &rows {
                    for &(x, wx) in &cols {
                        sum += plane[y * w + x] as f64 * wy * wx;
                        area += wy * wx;
                    }
                }
                out.push((sum / area / 255.0) as f32);
            }
        }
    }
    out
}

/// The set's tensors: sample, split, decode, crop or resize.
pub fn make(dir: &Path, set: &OodSet, transform: Transform, progress: ProgressFn) -> Result<Vec<(String, Tensor)>> {
    let images = list_images(dir).map_err(super::bad_input)?;
    let chosen = sample(images.len(), set.count, set.seed, dir).map_err(super::bad_input)?;
    let name_of = |path: &Path| path.display().to_string();
    let read = |path: &Path| std::fs::read(path).with_context(|| format!("reading {}", path.display())).map_err(super::bad_input);
    // Each sampled file is read once (in sample order): its header for the crop, then its pixels.
    let files = chosen.iter().map(|&i| read(&images[i])).collect::<Result<Vec<_>>>()?;
    let offsets = match transform {
        Transform::Crop => {
            let mut sizes = Vec::with_capacity(chosen.len());
            for (&i, bytes) in chosen.iter().zip(&files) {
                let path = &images[i];
                let (h, w) = dimensions(bytes, &name_of(path)).map_err(super::bad_input)?;
                if h < OUT || w < OUT {
                    return Err(super::bad_input(anyhow::anyhow!(
                        "{}: is {w}x{h}; a crop needs at least {OUT}x{OUT} (use transform = \"resize\")",
                        path.display()
                    )));
                }
                sizes.push((h, w));
            }
            crop_offsets(&sizes, set.seed)
        }
        Transform::Resize => Vec::new(),
    };
    let (mut test, mut val) = split(set.count, set.val, set.seed);
    // Within each split, the listing's order.
    test.sort_by_key(|&k| chosen[k]);
    val.sort_by_key(|&k| chosen[k]);

    let total = set.count as u64;
    let mut done = 0u64;
    let mut tensors = |positions: &[usize]| -> Result<(Tensor, Tensor, Tensor)> {
        let mut values = Vec::with_capacity(positions.len() * 3 * OUT * OUT);
        let mut sources = Vec::with_capacity(positions.len());
        let mut corners = Vec::with_capacity(positions.len() * 2);
        for &k in positions {
            let path = &images[chosen[k]];
            let planes = decode(&files[k], &name_of(path)).map_err(super::bad_input)?;
            match transform {
                Transform::Crop => {
                    let (row, col) = offsets[k];
                    values.extend(crop(&planes, row, col));
                    corners.extend([row as i64, col as i64]);
                }
                Transform::Resize => values.extend(resize(&planes)),
            }
            sources.push(chosen[k] as i64);
            done += 1;
            if done.is_multiple_of(100) {
                progress(done, total, "decoding images");
            }
        }
        let corners = Tensor::from_slice(&corners).view([-1, 2]);
        Ok((super::f32_images(&values, positions.len()), Tensor::from_slice(&sources), corners))
    };
    let (test_images, test_source, test_offsets) = tensors(&test)?;
    let (val_images, val_source, val_offsets) = tensors(&val)?;
    let mut named = vec![
        ("test_images".to_string(), test_images),
        ("test_source".to_string(), test_source),
        ("val_images".to_string(), val_images),
        ("val_source".to_string(), val_source),
    ];
    if transform == Transform::Crop {
        named.push(("test_offsets".to_string(), test_offsets));
        named.push(("val_offsets".to_string(), val_offsets));
    }
    Ok(named)
}
