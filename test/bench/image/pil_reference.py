"""PIL baseline for the image benchmark: the same pipelines as the service, in-process, one call after another.

Two ways, each timed per pipeline:
- cold: each iteration does what one uncached service call does: decode the JPEG bytes, apply EXIF orientation,
  run the operations, encode JPEG quality 90.
- warm: the image is decoded (and oriented) once and kept in memory, as a trainer holding its images would;
  each iteration runs the operations on it and encodes JPEG quality 90. The counterpart of the service's
  decoded-image cache.
Prints one JSON object {"cold": {pipeline: figures}, "warm": {...}, "enlarge": figures} with ops/s, latency
percentiles and CPU time per call; "enlarge" is crop+zoom's 300x200 -> 600x400 BICUBIC resize alone.

usage: pil_reference.py IMAGE_PATH ITERATIONS WARMUP
"""

import io
import json
import math
import sys
import time

from PIL import Image, ImageDraw, ImageFont, ImageOps


def smart_resize(height, width, factor=28, min_pixels=4 * 28 * 28, max_pixels=16384 * 28 * 28):
    """qwen_vl_utils.smart_resize."""
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = math.floor(height / beta / factor) * factor
        w_bar = math.floor(width / beta / factor) * factor
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def crop_zoom(image):
    region = image.crop((800, 400, 1100, 600))
    return region.resize((region.width * 2, region.height * 2), Image.BICUBIC)


def rotate(image):
    # PIL turns counter-clockwise; the service's angle is clockwise. libvips interpolates bilinearly.
    return image.rotate(-33, resample=Image.BILINEAR, expand=True, fillcolor=(0, 0, 0))


def smart(image):
    height, width = smart_resize(image.height, image.width)
    return image.resize((width, height), Image.BICUBIC)


try:
    # The service's labels are drawn with DejaVu Sans by librsvg; use the same font where Debian has it.
    FONT = ImageFont.truetype("DejaVuSans.ttf", 27)
except OSError:
    FONT = ImageFont.load_default()


def annotate(image):
    image = image.copy()
    draw = ImageDraw.Draw(image)
    for index, (left, top, right, bottom) in enumerate([(100, 100, 600, 500), (700, 300, 1200, 900), (1300, 50, 1800, 400)]):
        draw.rectangle((left, top, right, bottom), outline=(255, 0, 0), width=4)
        draw.rectangle((left, top - 31, left + 150, top), fill=(255, 0, 0))
        draw.text((left + 3, top - 29), f"object {index}", fill=(255, 255, 255), font=FONT)
    return image


PIPELINES = {"crop+zoom 2x": crop_zoom, "rotate 33": rotate, "smart resize": smart, "annotate": annotate}


def decode(data):
    return ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")


def encode(image):
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def run_cold(data, operation):
    return encode(operation(decode(data)))


def percentile(sorted_values, fraction):
    index = min(len(sorted_values) - 1, max(0, math.ceil(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def measure(call, iterations, warmup):
    for _ in range(warmup):
        call()
    latencies = []
    cpu_started = time.process_time()
    started = time.perf_counter()
    for _ in range(iterations):
        begin = time.perf_counter()
        call()
        latencies.append((time.perf_counter() - begin) * 1000)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    latencies.sort()
    return {
        "ops_per_s": iterations / elapsed,
        "p50_ms": percentile(latencies, 0.5),
        "p99_ms": percentile(latencies, 0.99),
        "cpu_ms_per_call": cpu * 1000 / iterations,
        "n": iterations,
    }


def main():
    path, iterations, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with open(path, "rb") as handle:
        data = handle.read()
    decoded = decode(data)
    results = {"cold": {}, "warm": {}}
    for name, operation in PIPELINES.items():
        results["cold"][name] = measure(lambda: run_cold(data, operation), iterations, warmup)
        results["warm"][name] = measure(lambda: encode(operation(decoded)), iterations, warmup)
    # The enlargement of crop+zoom alone (no crop copy, no encode): the baseline of the resampler comparison.
    region = decoded.crop((800, 400, 1100, 600))
    region.load()
    results["enlarge"] = measure(lambda: region.resize((600, 400), Image.BICUBIC), iterations * 4, warmup)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
