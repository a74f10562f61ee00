//! Channels-last (NHWC) storage for images and conv weights, which tch 0.26 has no
//! `MemoryFormat` API for. libtorch picks its memory format from the strides alone, so a tensor
//! of logical shape [N,C,H,W] whose storage is NHWC is "channels-last" to every op: it is made by
//! permuting to NHWC, copying contiguously and permuting the view back. The maths is unchanged;
//! only the speed of CPU convolutions differs (config key `train.channels_last`).

use tch::Tensor;

/// The same 4-d values, stored NHWC (channels-last). Other ranks are returned as they are.
pub fn to_channels_last(x: &Tensor) -> Tensor {
    if x.dim() != 4 || is_channels_last(x) {
        return x.shallow_clone();
    }
    x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// Whether a 4-d tensor's storage is dense NHWC (dimensions of size 1 may have any stride, as
/// in libtorch's own check; a 1x1 conv weight is both layouts at once).
pub fn is_channels_last(x: &Tensor) -> bool {
    if x.dim() != 4 {
        return false;
    }
    let (size, stride) = (x.size(), x.stride());
    let mut expected = 1;
    for d in [1, 3, 2, 0] {
        if size[d] != 1 {
            if stride[d] != expected {
                return false;
            }
            expected *= size[d];
        }
    }
    true
}

/// Re-stores every 4-d variable of the store (the conv weights) channels-last, in place: the
/// layers, the optimizer and the store keep seeing the same variables.
pub fn vars_to_channels_last(vs: &tch::nn::VarStore) {
    tch::no_grad(|| {
        for (_, mut var) in vs.variables() {
            if var.dim() == 4 && !is_channels_last(&var) {
                let restored = to_channels_last(&var.detach());
                var.set_data(&restored);
            }
        }
    });
}
