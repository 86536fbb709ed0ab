"""Chapter 6 (cnn): convolution and pooling from scratch, with the signatures
and semantics of ``torch.nn.functional``.

Every operation here is built from padding, a strided *view* of the input
(:func:`extract_patches`, no copy) and a matrix product (im2col), so
autograd differentiates it with no custom backward. Nothing calls torch's own
convolution or pooling kernels.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["conv_output_size", "extract_patches", "conv1d", "conv2d",
           "conv_transpose2d", "max_pool2d", "avg_pool2d"]

IntPair = int | tuple[int, int]


def _pair(name: str, v: IntPair, minimum: int) -> tuple[int, int]:
    """``v`` as a pair of ints, each >= ``minimum``; fail with the name."""
    out = (v, v) if isinstance(v, int) else tuple(v)
    if len(out) != 2 or not all(isinstance(a, int) and a >= minimum for a in out):
        raise ValueError(f"{name} must be an int or a pair of ints >= {minimum}, "
                         f"got {v!r}")
    return out


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0,
                     dilation: int = 1) -> int:
    """Output length of a convolution or pooling along one axis.

    ``floor((size + 2 padding - dilation (kernel - 1) - 1) / stride) + 1``,
    the formula of ``torch.nn.Conv2d``. Fails if it is not positive.
    """
    span = dilation * (kernel - 1) + 1
    out = (size + 2 * padding - span) // stride + 1
    if out < 1:
        raise ValueError(f"the window (span {span}) does not fit an input of size "
                         f"{size} with padding {padding}")
    return out


def extract_patches(x: torch.Tensor, kernel_size: IntPair, stride: IntPair = 1,
                    dilation: IntPair = 1) -> torch.Tensor:
    """All ``kernel_size`` windows of ``x`` as a strided view (im2col, no copy).

    Shape: ``(N, C, H, W) -> (N, C, k_h, k_w, H_out, W_out)`` with
    ``patches[n, c, a, b, i, j] = x[n, c, i s_h + a d_h, j s_w + b d_w]``
    (no padding: pad ``x`` first). Flattening axes 1-3 gives the im2col matrix.
    """
    if x.ndim != 4:
        raise ValueError(f"x must have shape (N, C, H, W), got {tuple(x.shape)}")
    kh, kw = _pair("kernel_size", kernel_size, 1)
    sh, sw = _pair("stride", stride, 1)
    dh, dw = _pair("dilation", dilation, 1)
    N, C, H, W = x.shape
    Ho, Wo = conv_output_size(H, kh, sh, 0, dh), conv_output_size(W, kw, sw, 0, dw)
    x = x.contiguous()
    n_, c_, h_, w_ = x.stride()
    return x.as_strided((N, C, kh, kw, Ho, Wo),
                        (n_, c_, h_ * dh, w_ * dw, h_ * sh, w_ * sw))


def _check_conv_args(input: torch.Tensor, weight: torch.Tensor,
                     bias: torch.Tensor | None, groups: int) -> None:
    if input.ndim != 4:
        raise ValueError(f"input must have shape (N, C_in, H, W), got "
                         f"{tuple(input.shape)}")
    if weight.ndim != 4:
        raise ValueError(f"weight must have shape (C_out, C_in / groups, k_h, k_w), "
                         f"got {tuple(weight.shape)}")
    if not isinstance(groups, int) or groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    C, O = input.shape[1], weight.shape[0]
    if C % groups or O % groups or weight.shape[1] != C // groups:
        raise ValueError(f"with groups={groups}, C_in={C} and C_out={O} must be "
                         f"divisible by groups and weight.shape[1] must be "
                         f"C_in / groups = {C // groups}, got {weight.shape[1]}")
    if bias is not None and bias.shape != (O,):
        raise ValueError(f"bias must have shape ({O},), got {tuple(bias.shape)}")


def conv2d(input: torch.Tensor, weight: torch.Tensor,
           bias: torch.Tensor | None = None, stride: IntPair = 1,
           padding: IntPair = 0, dilation: IntPair = 1, groups: int = 1,
           padding_mode: str = "zeros") -> torch.Tensor:
    """2-D convolution (cross-correlation, as in deep learning), eq. (conv2d).

    ``out[n, o, i, j] = b[o] + sum_{c, a, b} w[o, c, a, b]
    x[n, g(o) C_g + c, i s + a d, j s + b d]`` on the padded input, where
    ``g(o)`` is the group of output channel ``o``. ``padding_mode`` is
    ``"zeros"`` or ``"circular"``. Shapes: input ``(N, C_in, H, W)``, weight
    ``(C_out, C_in / groups, k_h, k_w)``, bias ``(C_out,)``, output
    ``(N, C_out, H_out, W_out)``; an unbatched ``(C_in, H, W)`` input works too.
    """
    if input.ndim == 3:
        return conv2d(input[None], weight, bias, stride, padding, dilation,
                      groups, padding_mode)[0]
    _check_conv_args(input, weight, bias, groups)
    ph, pw = _pair("padding", padding, 0)
    if padding_mode not in ("zeros", "circular"):
        raise ValueError(f"padding_mode must be 'zeros' or 'circular', "
                         f"got {padding_mode!r}")
    mode = "constant" if padding_mode == "zeros" else "circular"
    x = F.pad(input, (pw, pw, ph, ph), mode=mode) if ph or pw else input
    O, Cg, kh, kw = weight.shape
    p = extract_patches(x, (kh, kw), stride, dilation)
    N, Ho, Wo = p.shape[0], p.shape[4], p.shape[5]
    cols = p.reshape(N, groups, Cg * kh * kw, Ho * Wo)      # im2col, per group
    w = weight.reshape(groups, O // groups, Cg * kh * kw)
    out = (w @ cols).reshape(N, O, Ho, Wo)                   # eq. (conv2d)
    return out if bias is None else out + bias.reshape(1, O, 1, 1)


def conv1d(input: torch.Tensor, weight: torch.Tensor,
           bias: torch.Tensor | None = None, stride: int = 1, padding: int = 0,
           dilation: int = 1, groups: int = 1,
           padding_mode: str = "zeros") -> torch.Tensor:
    """1-D convolution: :func:`conv2d` on inputs of height one.

    Shapes: input ``(N, C_in, L)`` (or ``(C_in, L)``), weight
    ``(C_out, C_in / groups, k)``, output ``(N, C_out, L_out)``.
    """
    if input.ndim == 2:
        return conv1d(input[None], weight, bias, stride, padding, dilation,
                      groups, padding_mode)[0]
    if input.ndim != 3 or weight.ndim != 3:
        raise ValueError(f"input must be (N, C_in, L) and weight (C_out, C_in / "
                         f"groups, k), got {tuple(input.shape)} and "
                         f"{tuple(weight.shape)}")
    for name, v in (("stride", stride), ("padding", padding), ("dilation", dilation)):
        if not isinstance(v, int):
            raise ValueError(f"{name} must be an int for conv1d, got {v!r}")
    out = conv2d(input[:, :, None], weight[:, :, None], bias, (1, stride),
                 (0, padding), (1, dilation), groups, padding_mode)
    return out[:, :, 0]


def _dilate(x: torch.Tensor, stride: tuple[int, int]) -> torch.Tensor:
    """Insert ``stride - 1`` zeros between neighbouring pixels. ``(N, C, H, W)``."""
    sh, sw = stride
    if sh == sw == 1:
        return x
    N, C, H, W = x.shape
    out = x.new_zeros(N, C, (H - 1) * sh + 1, (W - 1) * sw + 1)
    out[:, :, ::sh, ::sw] = x
    return out


def conv_transpose2d(input: torch.Tensor, weight: torch.Tensor,
                     bias: torch.Tensor | None = None, stride: IntPair = 1,
                     padding: IntPair = 0, output_padding: IntPair = 0,
                     groups: int = 1, dilation: IntPair = 1) -> torch.Tensor:
    """Transposed convolution: the adjoint of :func:`conv2d` as a linear map.

    Spread the input with ``stride - 1`` zeros, pad by ``d (k - 1) - padding``
    (plus ``output_padding`` at the far end), and convolve with the kernel
    flipped in space and with in/out channels swapped. Shapes: input
    ``(N, C_in, H, W)``, weight ``(C_in, C_out / groups, k_h, k_w)`` (PyTorch's
    layout), output ``(N, C_out, H_out, W_out)`` with
    ``H_out = (H - 1) s - 2 padding + d (k - 1) + output_padding + 1``.
    """
    if input.ndim != 4 or weight.ndim != 4 or weight.shape[0] != input.shape[1]:
        raise ValueError(f"input must be (N, C_in, H, W) and weight (C_in, C_out / "
                         f"groups, k_h, k_w), got {tuple(input.shape)} and "
                         f"{tuple(weight.shape)}")
    s, p = _pair("stride", stride, 1), _pair("padding", padding, 0)
    op, d = _pair("output_padding", output_padding, 0), _pair("dilation", dilation, 1)
    Ci, Og, kh, kw = weight.shape
    if Ci % groups:
        raise ValueError(f"C_in={Ci} must be divisible by groups={groups}")
    x = _dilate(input, s)
    lo = [d[0] * (kh - 1) - p[0], d[1] * (kw - 1) - p[1]]
    if min(lo) < 0:
        raise ValueError(f"padding {p} exceeds dilation * (kernel - 1)")
    x = F.pad(x, (lo[1], lo[1] + op[1], lo[0], lo[0] + op[0]))
    # (C_in, C_out/g, kh, kw) -> (C_out, C_in/g, kh, kw), flipped in space
    w = weight.reshape(groups, Ci // groups, Og, kh, kw).transpose(1, 2)
    w = w.reshape(groups * Og, Ci // groups, kh, kw).flip(-2, -1)
    return conv2d(x, w, bias, 1, 0, d, groups)


def _pool_args(kernel_size: IntPair, stride: IntPair | None, padding: IntPair
               ) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    k = _pair("kernel_size", kernel_size, 1)
    s = k if stride is None else _pair("stride", stride, 1)
    p = _pair("padding", padding, 0)
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f"padding {p} must be at most half of kernel_size {k}")
    return k, s, p


def max_pool2d(input: torch.Tensor, kernel_size: IntPair,
               stride: IntPair | None = None, padding: IntPair = 0) -> torch.Tensor:
    """Max pooling: the largest value in each window; ``stride`` defaults to
    ``kernel_size`` and padding is by ``-inf``, as in PyTorch.

    Shape: ``(N, C, H, W) -> (N, C, H_out, W_out)``.
    """
    if input.ndim != 4:
        raise ValueError(f"input must have shape (N, C, H, W), got "
                         f"{tuple(input.shape)}")
    k, s, (ph, pw) = _pool_args(kernel_size, stride, padding)
    x = F.pad(input, (pw, pw, ph, ph), value=float("-inf")) if ph or pw else input
    return extract_patches(x, k, s).amax(dim=(2, 3))


def avg_pool2d(input: torch.Tensor, kernel_size: IntPair,
               stride: IntPair | None = None, padding: IntPair = 0,
               count_include_pad: bool = True) -> torch.Tensor:
    """Average pooling: the mean of each window, zero-padded. With
    ``count_include_pad=False`` the padded zeros are left out of the count.

    Shape: ``(N, C, H, W) -> (N, C, H_out, W_out)``.
    """
    if input.ndim != 4:
        raise ValueError(f"input must have shape (N, C, H, W), got "
                         f"{tuple(input.shape)}")
    k, s, (ph, pw) = _pool_args(kernel_size, stride, padding)
    x = F.pad(input, (pw, pw, ph, ph)) if ph or pw else input
    total = extract_patches(x, k, s).sum(dim=(2, 3))
    if count_include_pad or not (ph or pw):
        return total / (k[0] * k[1])
    ones = F.pad(input.new_ones(1, 1, *input.shape[-2:]), (pw, pw, ph, ph))
    return total / extract_patches(ones, k, s).sum(dim=(2, 3))
