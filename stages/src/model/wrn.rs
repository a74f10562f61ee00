//! The Wide-ResNet backbone WRN-d-k (Zagoruyko & Komodakis 2016) that every trained model shares
//! (SPEC.md "Model and training"): it maps a normalised image batch to the pooled feature `f(x)`,
//! and the heads in [`super::head`] turn that feature into each model's outputs.
//!
//! The layout follows the authors' code: a 3x3 stem conv to 16 channels, three groups of `n`
//! pre-activation basic blocks (BN-ReLU-conv3x3-BN-ReLU-conv3x3) of widths 16k, 32k, 64k with
//! strides 1, 2, 2, a 1x1 conv shortcut (fed the pre-activated input) where the shape changes, a
//! final BN-ReLU and a global average pool. No dropout, no conv biases, He-normal conv init
//! (std = sqrt(2 / (3 * 3 * out_channels))), BN weight 1 and bias 0.

use anyhow::{Result, ensure};
use tch::Tensor;
use tch::nn::{self, ModuleT};

/// BN with the WRN code's init (weight 1, bias 0) and PyTorch's defaults otherwise.
fn batch_norm(vs: nn::Path, channels: i64) -> nn::BatchNorm {
    nn::batch_norm2d(
        vs,
        channels,
        nn::BatchNormConfig { ws_init: nn::Init::Const(1.0), bs_init: nn::Init::Const(0.0), ..Default::default() },
    )
}

/// A bias-free conv with the WRN code's He-normal init (fan-out: k * k * out_channels).
fn conv(vs: nn::Path, c_in: i64, c_out: i64, kernel: i64, stride: i64) -> nn::Conv2D {
    let fan_out = (kernel * kernel * c_out) as f64;
    nn::conv2d(
        vs,
        c_in,
        c_out,
        kernel,
        nn::ConvConfig {
            stride,
            padding: kernel / 2,
            bias: false,
            ws_init: nn::Init::Randn { mean: 0.0, stdev: (2.0 / fan_out).sqrt() },
            ..Default::default()
        },
    )
}

/// One pre-activation basic block.
#[derive(Debug)]
struct Block {
    bn1: nn::BatchNorm,
    conv1: nn::Conv2D,
    bn2: nn::BatchNorm,
    conv2: nn::Conv2D,
    /// A 1x1 conv where the number of channels or the resolution changes; identity otherwise.
    shortcut: Option<nn::Conv2D>,
}

impl Block {
    fn new(vs: nn::Path, c_in: i64, c_out: i64, stride: i64) -> Block {
        let shortcut = (c_in != c_out || stride != 1).then(|| conv(&vs / "shortcut", c_in, c_out, 1, stride));
        Block {
            bn1: batch_norm(&vs / "bn1", c_in),
            conv1: conv(&vs / "conv1", c_in, c_out, 3, stride),
            bn2: batch_norm(&vs / "bn2", c_out),
            conv2: conv(&vs / "conv2", c_out, c_out, 3, 1),
            shortcut,
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let pre = x.apply_t(&self.bn1, train).relu();
        let out = pre.apply(&self.conv1).apply_t(&self.bn2, train).relu().apply(&self.conv2);
        match &self.shortcut {
            // As in the WRN code, the projection sees the pre-activated input.
            Some(projection) => out + pre.apply(projection),
            None => out + x,
        }
    }
}

/// WRN-depth-widen without its classifier: images [N,3,H,W] (normalised) -> features [N, 64k].
#[derive(Debug)]
pub struct WideResNet {
    stem: nn::Conv2D,
    blocks: Vec<Block>,
    bn: nn::BatchNorm,
    /// Size of the pooled feature, 64 * widen.
    pub feature_dim: i64,
}

impl WideResNet {
    /// Declares the backbone's variables under `vs`. Depth must be 6n + 4 with n >= 1.
    pub fn new(vs: nn::Path, depth: i64, widen: i64) -> Result<WideResNet> {
        ensure!(
            depth >= 10 && (depth - 4) % 6 == 0,
            "model.depth = {depth}: a Wide-ResNet's depth is 6n + 4 with n >= 1 (10, 16, 22, 28, ...)"
        );
        ensure!(widen >= 1, "model.widen = {widen}: the width multiplier must be at least 1");
        let n = (depth - 4) / 6;
        let widths = [16, 16 * widen, 32 * widen, 64 * widen];
        let stem = conv(&vs / "stem", 3, widths[0], 3, 1);
        let mut blocks = Vec::new();
        for group in 0..3 {
            let stride = if group == 0 { 1 } else { 2 };
            for i in 0..n {
                let c_in = if i == 0 { widths[group] } else { widths[group + 1] };
                let s = if i == 0 { stride } else { 1 };
                blocks.push(Block::new(&vs / format!("group{}", group + 1) / format!("block{}", i + 1), c_in, widths[group + 1], s));
            }
        }
        let bn = batch_norm(&vs / "bn", widths[3]);
        Ok(WideResNet { stem, blocks, bn, feature_dim: widths[3] })
    }

    /// The pooled feature f(x): [N, feature_dim].
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut h = x.apply(&self.stem);
        for block in &self.blocks {
            h = block.forward_t(&h, train);
        }
        h.apply_t(&self.bn, train).relu().mean_dim(&[-2i64, -1][..], false, None)
    }
}

impl ModuleT for WideResNet {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        WideResNet::forward_t(self, xs, train)
    }
}
