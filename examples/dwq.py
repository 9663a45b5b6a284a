"""Distil one quantized linear layer (DWQ): the integer codes of a 3-bit
quantization of a random teacher stay frozen; its per-group scales and
biases are trained by SGD so the student's outputs approach the teacher's.

    python examples/dwq.py [--steps 20] [--bits 3] [--group-size 64]

Every matmul and gradient runs as qmetal kernels (the simulator on Linux, in
seconds); the teacher is float32 NumPy. The loss is the mean squared error
of the layer's output on a fixed calibration batch, and goes down.
"""

from __future__ import annotations

import argparse

import numpy as np

import qmetal


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--bits", type=int, default=3)
    parser.add_argument("--group-size", type=int, default=64)
    parser.add_argument("--rows", type=int, default=64, help="calibration tokens")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    n, k = 96, 512  # out_features, in_features
    teacher = (rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32)
    x = rng.standard_normal((args.rows, k)).astype(np.float32)
    target = x @ teacher.T

    # Codes, scales and biases from per-group min/max, on the device.
    student = qmetal.dwq.init(teacher, bits=args.bits, group_size=args.group_size)
    scales, biases = student.scales, student.biases  # views of the weight's own memory: updates in place
    print(f"student: {student} ({qmetal.default_device().name})")

    # Step sizes from the curvature of the loss (its diagonal): a group's
    # output moves by about sqrt(group_size E[x^2]) per unit of bias, and by
    # code times that per unit of scale, so each gets its own step.
    codes = student.codes.astype(np.float32)
    bias_curvature = 2.0 / n * args.group_size * float(np.mean(x ** 2))
    lr_biases = 0.5 / bias_curvature
    lr_scales = 0.5 / (bias_curvature * float(np.mean(codes ** 2)))

    for step in range(args.steps + 1):
        y = qmetal.matmul(x, student)
        error = y - target
        loss = float(np.mean(error ** 2))
        print(f"step {step:3d}  loss {loss:.6e}")
        if step == args.steps:
            break
        dy = (2.0 / error.size) * error
        _, d_scales, d_biases = qmetal.matmul_vjp(x, student, dy)
        scales -= lr_scales * d_scales
        biases -= lr_biases * d_biases


if __name__ == "__main__":
    main()
