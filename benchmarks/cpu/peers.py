#!/usr/bin/env python3
"""Dense fp32 attention peers for the CPU benchmark: NumPy (OpenBLAS) and ONNX Runtime (CPU).

Same problem as the Swift dense benchmark: B=1, H=8, S=4096, D=128, scale 1/sqrt(D).
Effective FLOPs = 4*B*H*S^2*D, divided by the median wall time.
Run with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset so OpenBLAS picks its own kernel.
"""
import argparse
import os
import statistics
import time

import numpy as np


def timed(fn, warmup, runs):
    for _ in range(warmup):
        fn()
    samples = []
    cpu = []
    for _ in range(runs):
        c0 = time.process_time()
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(samples), min(samples), statistics.median(cpu)


def numpy_attention(q, k, v, scale):
    out = np.empty_like(q)
    for b in range(q.shape[0]):
        for h in range(q.shape[1]):
            s = (q[b, h] * scale) @ k[b, h].T
            s -= s.max(axis=1, keepdims=True)
            np.exp(s, out=s)
            s /= s.sum(axis=1, keepdims=True)
            np.matmul(s, v[b, h], out=out[b, h])
    return out


def report(name, flops, median, best, cpu):
    print(f"{name}: median {median * 1e3:.1f} ms (min {best * 1e3:.1f} ms, {cpu / median:.2f} cores busy), "
          f"{flops / median / 1e9:.1f} GFLOP/s effective")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seq", type=int, default=4096)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    b, h, s, d = 1, args.heads, args.seq, args.dim
    flops = 4.0 * b * h * s * s * d
    scale = 1.0 / np.sqrt(d)
    rng = np.random.default_rng(0)
    q, k, v = (rng.uniform(-2, 2, size=(b, h, s, d)).astype(np.float32) for _ in range(3))

    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')} OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE')}")
    try:
        from threadpoolctl import threadpool_info
        for pool in threadpool_info():
            print("threadpool:", {key: pool.get(key) for key in ("internal_api", "version", "architecture", "num_threads")})
    except ImportError:
        print("threadpoolctl not installed; BLAS kernel unknown")

    reference = numpy_attention(q, k, v, scale)
    report(f"numpy {np.__version__} dense S={s} D={d} H={h} B=1 fp32", flops,
           *timed(lambda: numpy_attention(q, k, v, scale), 1, args.runs))

    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper
    except ImportError as error:
        print(f"onnxruntime skipped: {error}")
        return

    def session(nodes, opset, domain_opsets=()):
        inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [b, h, s, d]) for n in ("Q", "K", "V")]
        output = helper.make_tensor_value_info("O", TensorProto.FLOAT, None)
        graph = helper.make_graph(nodes, "attention", inputs, [output])
        opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(dom, ver) for dom, ver in domain_opsets]
        model = helper.make_model(graph, opset_imports=opsets)
        model.ir_version = 10
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])

    candidates = {
        "Attention (opset 23)": lambda: session(
            [helper.make_node("Attention", ["Q", "K", "V"], ["O"], scale=float(scale))], 23),
        "MatMul-Softmax-MatMul graph": lambda: session([
            helper.make_node("Constant", [], ["scale"], value=helper.make_tensor("scale", TensorProto.FLOAT, [], [float(scale)])),
            helper.make_node("Transpose", ["K"], ["KT"], perm=[0, 1, 3, 2]),
            helper.make_node("MatMul", ["Q", "KT"], ["S"]),
            helper.make_node("Mul", ["S", "scale"], ["SS"]),
            helper.make_node("Softmax", ["SS"], ["P"], axis=-1),
            helper.make_node("MatMul", ["P", "V"], ["O"]),
        ], 17),
    }
    feeds = {"Q": q, "K": k, "V": v}
    for name, make in candidates.items():
        try:
            sess = make()
            out = sess.run(None, feeds)[0]
        except Exception as error:  # noqa: BLE001 - report and go on
            print(f"onnxruntime {ort.__version__} {name}: skipped ({str(error).splitlines()[0][:160]})")
            continue
        error = np.linalg.norm(out - reference) / np.linalg.norm(reference)
        report(f"onnxruntime {ort.__version__} {name} dense S={s} D={d} H={h} B=1 fp32 (rel. diff to numpy {error:.1e})",
               flops, *timed(lambda: sess.run(None, feeds), 1, args.runs))


if __name__ == "__main__":
    main()
