"""Benchmark of prn.rendering.raster.rasterizer against a face3d-style C++ rasterizer.

    python benchmarks/bench_rasterizer.py [--repeat N]

Cases, on the BFM topology when ../shared/real/bfm exists next to the
repository (a synthetic grid mesh of the same size otherwise):
  1. UV position map 256 x 256 with render_colors;
  2. the same with a precomputed pixel_table, then gather (per-sample floor);
  3. an image render 450 x 450 of the mean shape placed like a 300W-LP face.
The baseline, measured in the same run, is the rasterizer most PRN users run
(face3d's render_colors algorithm), written here from its description, built
with g++ -O3 at run time and called through ctypes with float32 arrays. All
timings are single-threaded medians after warm-up.
"""

import os

# Single-threaded numbers: pin the thread pools before numpy / numba load.
for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import ctypes
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BFM_DIR = REPO.parent / "shared" / "real" / "bfm"

# face3d's render_colors algorithm, structured as face3d's C++ is: a small
# point class, a per-pixel inside test (isPointInTri) and a separate per-pixel
# weight computation (get_point_weight), each with the dot-product method; the
# 2-pixel image border is drawn without the inside test; z-buffer, larger z
# nearer, writes the c attributes. Written from that description.
BASELINE_CPP = r"""
#include <algorithm>
#include <cmath>

struct Point {
    float x, y;
    Point operator-(const Point& o) const { return {x - o.x, y - o.y}; }
    float dot(const Point& o) const { return x * o.x + y * o.y; }
};

static bool inside(const Point& p, const Point& p0, const Point& p1, const Point& p2) {
    Point v0 = p2 - p0, v1 = p1 - p0, v2 = p - p0;
    float dot00 = v0.dot(v0), dot01 = v0.dot(v1), dot02 = v0.dot(v2);
    float dot11 = v1.dot(v1), dot12 = v1.dot(v2);
    float denominator = dot00 * dot11 - dot01 * dot01;
    float inverse = denominator == 0 ? 0 : 1 / denominator;
    float u = (dot11 * dot02 - dot01 * dot12) * inverse;
    float v = (dot00 * dot12 - dot01 * dot02) * inverse;
    return u >= 0 && v >= 0 && u + v < 1;
}

static void weights(float* weight, const Point& p, const Point& p0, const Point& p1, const Point& p2) {
    Point v0 = p2 - p0, v1 = p1 - p0, v2 = p - p0;
    float dot00 = v0.dot(v0), dot01 = v0.dot(v1), dot02 = v0.dot(v2);
    float dot11 = v1.dot(v1), dot12 = v1.dot(v2);
    float denominator = dot00 * dot11 - dot01 * dot01;
    float inverse = denominator == 0 ? 0 : 1 / denominator;
    float u = (dot11 * dot02 - dot01 * dot12) * inverse;
    float v = (dot00 * dot12 - dot01 * dot02) * inverse;
    weight[0] = 1 - u - v;
    weight[1] = v;
    weight[2] = u;
}

extern "C" void render_colors(float* image, const float* vertices, const int* triangles,
                              const float* colors, float* depth, int n_triangles,
                              int h, int w, int c) {
    float weight[3];
    for (int t = 0; t < n_triangles; ++t) {
        const int i0 = triangles[3 * t], i1 = triangles[3 * t + 1], i2 = triangles[3 * t + 2];
        const Point p0{vertices[3 * i0], vertices[3 * i0 + 1]};
        const Point p1{vertices[3 * i1], vertices[3 * i1 + 1]};
        const Point p2{vertices[3 * i2], vertices[3 * i2 + 1]};
        const float z0 = vertices[3 * i0 + 2], z1 = vertices[3 * i1 + 2], z2 = vertices[3 * i2 + 2];
        const int col_min = std::max((int)std::ceil(std::min(p0.x, std::min(p1.x, p2.x))), 0);
        const int col_max = std::min((int)std::floor(std::max(p0.x, std::max(p1.x, p2.x))), w - 1);
        const int row_min = std::max((int)std::ceil(std::min(p0.y, std::min(p1.y, p2.y))), 0);
        const int row_max = std::min((int)std::floor(std::max(p0.y, std::max(p1.y, p2.y))), h - 1);
        if (col_max < col_min || row_max < row_min) continue;
        for (int row = row_min; row <= row_max; ++row) {
            for (int col = col_min; col <= col_max; ++col) {
                const Point p{(float)col, (float)row};
                if (col < 2 || col > w - 3 || row < 2 || row > h - 3 || inside(p, p0, p1, p2)) {
                    weights(weight, p, p0, p1, p2);
                    const float z = weight[0] * z0 + weight[1] * z1 + weight[2] * z2;
                    const int pixel = row * w + col;
                    if (z > depth[pixel]) {
                        for (int k = 0; k < c; ++k) {
                            image[pixel * c + k] = weight[0] * colors[c * i0 + k] + weight[1] * colors[c * i1 + k]
                                                   + weight[2] * colors[c * i2 + k];
                        }
                        depth[pixel] = z;
                    }
                }
            }
        }
    }
}
"""


def load_mesh():
    """(source, uv (n, 2) in [0, 1], triangles (m, 3) int32, positions (n, 3) float32 in µm)."""
    if BFM_DIR.is_dir():
        from scipy.io import loadmat

        uv = loadmat(BFM_DIR / "BFM_UV.mat")["UV"]
        triangles = np.load(BFM_DIR / "triangles.npy")
        positions = np.load(BFM_DIR / "mean_shape.npy")
        return f"real BFM topology ({BFM_DIR})", uv, triangles, positions
    # Synthetic stand-in of the same size: a 230 x 231 grid, two triangles per
    # quad, and a face-sized bumpy surface (x right, y up, z towards the viewer).
    nu, nv = 230, 231
    gv, gu = np.mgrid[0:nv, 0:nu]
    u, v = gu.ravel() / (nu - 1), gv.ravel() / (nv - 1)
    uv = np.column_stack([u, v])
    x, y = (u - 0.5) * 1.8e5, (v - 0.5) * 2.2e5
    z = 8e4 * np.cos(np.pi * (u - 0.5)) * np.cos(np.pi * (v - 0.5)) + 4e3 * np.sin(12 * u) * np.cos(9 * v)
    positions = np.column_stack([x, y, z]).astype(np.float32)
    idx = np.arange(nu * nv).reshape(nv, nu)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    triangles = np.concatenate([np.column_stack([a, b, d]), np.column_stack([a, d, c])]).astype(np.int32)
    return "synthetic 230 x 231 grid (no ../shared/real/bfm)", uv, triangles, positions


def build_baseline(workdir):
    """The compiled baseline's render_colors through ctypes, or None without g++."""
    compiler = shutil.which("g++")
    if compiler is None:
        return None
    source, library = Path(workdir) / "baseline.cpp", Path(workdir) / "baseline.so"
    source.write_text(BASELINE_CPP)
    subprocess.run([compiler, "-O3", "-shared", "-fPIC", str(source), "-o", str(library)], check=True)
    lib = ctypes.CDLL(str(library))
    pointer = np.ctypeslib.ndpointer
    lib.render_colors.restype = None
    lib.render_colors.argtypes = [
        pointer(np.float32, flags="C_CONTIGUOUS"),
        pointer(np.float32, flags="C_CONTIGUOUS"),
        pointer(np.int32, flags="C_CONTIGUOUS"),
        pointer(np.float32, flags="C_CONTIGUOUS"),
        pointer(np.float32, flags="C_CONTIGUOUS"),
    ] + [ctypes.c_int] * 4

    def render(vertices, triangles, colors, height, width):
        # Buffers allocated per call, as face3d's Python wrapper does; the
        # inputs are passed as they are (already float32 / int32, contiguous).
        image = np.zeros((height, width, colors.shape[1]), dtype=np.float32)
        depth = np.full((height, width), -999999.0, dtype=np.float32)
        lib.render_colors(
            image, vertices, triangles, colors, depth, len(triangles), height, width, colors.shape[1]
        )
        return image

    return render


def cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def median_ms(function, repeat, warmup=3):
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


FIRST_CALL = """
import time, numpy as np
from prn.rendering.raster.rasterizer import render_colors
v = np.array([[0, 0, 0], [9, 0, 0], [0, 9, 0]], np.float32)
t = np.array([[0, 1, 2]], np.int32)
start = time.perf_counter()
render_colors(v, t, v, 16, 16)
print(time.perf_counter() - start)
"""


def first_call_seconds():
    """Seconds of the first render_colors call in a fresh process: (empty cache, warm cache)."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        run = [sys.executable, "-c", FIRST_CALL]
        compile_s = float(subprocess.run(run, env=env, capture_output=True, text=True, check=True).stdout)
        load_s = float(subprocess.run(run, env=env, capture_output=True, text=True, check=True).stdout)
    return compile_s, load_s


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50, help="timed calls per case (default 50)")
    args = parser.parse_args()

    import numba

    from prn.rendering.raster.rasterizer import gather, pixel_table, render_colors

    source, uv, triangles, positions = load_mesh()
    triangles = np.ascontiguousarray(triangles, dtype=np.int32)
    positions = np.ascontiguousarray(positions, dtype=np.float32)
    n = len(uv)

    # UV layout for the 256 map: col = U * 255, row = 255 - V * 255, z = 0.
    uv_vertices = np.zeros((n, 3), dtype=np.float32)
    uv_vertices[:, 0] = uv[:, 0] * 255
    uv_vertices[:, 1] = 255 - uv[:, 1] * 255
    # The mean shape placed like a 300W-LP face in a 450 x 450 image.
    s = 1.3e-3
    image_vertices = np.column_stack(
        [s * positions[:, 0] + 225, 450 - 1 - (s * positions[:, 1] + 225), s * positions[:, 2]]
    ).astype(np.float32)
    colors = np.random.default_rng(0).uniform(0, 1, (n, 3)).astype(np.float32)

    print(f"mesh: {source}: {n} vertices, {len(triangles)} triangles")
    print(
        f"machine: {cpu_name()}, {os.cpu_count()} cores; "
        f"python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}; "
        f"threads pinned to 1; median of {args.repeat} calls after warm-up"
    )
    compile_s, load_s = first_call_seconds()
    print(f"numba first call in a fresh process: {compile_s:.2f} s with an empty cache (compile), "
          f"{load_s:.2f} s with a warm cache (load)")

    table = pixel_table(uv_vertices, triangles, 256, 256)
    table_ms = median_ms(lambda: pixel_table(uv_vertices, triangles, 256, 256), max(1, args.repeat // 10), 1)
    print(f"pixel_table of the UV layout (once per mesh): {table_ms:.2f} ms, {len(table.pixels)} pixels")

    # (name, Numba call, baseline inputs: key, vertices, attributes, image size)
    uv_inputs = ("uv", uv_vertices, positions, 256)
    image_inputs = ("image", image_vertices, colors, 450)
    cases = [
        ("UV map 256x256 render_colors", lambda: render_colors(uv_vertices, triangles, positions, 256, 256),
         uv_inputs),
        ("UV map 256x256 gather (table)", lambda: gather(table, positions), uv_inputs),
        ("image 450x450 render_colors", lambda: render_colors(image_vertices, triangles, colors, 450, 450),
         image_inputs),
    ]

    with tempfile.TemporaryDirectory() as workdir:
        baseline = build_baseline(workdir)
        if baseline is None:
            print("g++ not found: no C++ baseline, Numba numbers only")
        baseline_ms = {}
        rows = []
        for name, function, (key, vertices, attributes, size) in cases:
            ms = median_ms(function, args.repeat)
            if baseline is not None and key not in baseline_ms:
                baseline_ms[key] = median_ms(
                    lambda v=vertices, a=attributes, s=size: baseline(v, triangles, a, s, s), args.repeat
                )
                # Sanity check: both draw the same picture up to edge pixels.
                ours, theirs = function(), baseline(vertices, triangles, attributes, size, size)
                same = np.mean((ours != 0).any(-1) == (theirs != 0).any(-1))
                print(f"  {key}: covered pixels agree with the baseline on {100 * same:.2f}% of the image")
            rows.append((name, ms, baseline_ms.get(key)))

    print()
    print(f"{'case':<32} {'numba ms':>10} {'baseline ms':>12} {'speed-up':>9}")
    for name, ms, base in rows:
        if base is None:
            print(f"{name:<32} {ms:>10.3f} {'-':>12} {'-':>9}")
        else:
            print(f"{name:<32} {ms:>10.3f} {base:>12.3f} {base / ms:>8.2f}x")


if __name__ == "__main__":
    main()
