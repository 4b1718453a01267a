"""PIL baseline for the image benchmark: the same pipelines as the service, in-process, one call after another.

Each iteration does what one service call does: decode the JPEG bytes, apply EXIF orientation, run the
operations, encode JPEG quality 90. Prints one JSON object with ops/s, latency percentiles and CPU time per call
for each pipeline.

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


def run_once(data, operation):
    image = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    image = operation(image.convert("RGB"))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def percentile(sorted_values, fraction):
    index = min(len(sorted_values) - 1, max(0, math.ceil(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def main():
    path, iterations, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with open(path, "rb") as handle:
        data = handle.read()
    results = {}
    for name, operation in PIPELINES.items():
        for _ in range(warmup):
            run_once(data, operation)
        latencies = []
        cpu_started = time.process_time()
        started = time.perf_counter()
        for _ in range(iterations):
            begin = time.perf_counter()
            run_once(data, operation)
            latencies.append((time.perf_counter() - begin) * 1000)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        latencies.sort()
        results[name] = {
            "ops_per_s": iterations / elapsed,
            "p50_ms": percentile(latencies, 0.5),
            "p99_ms": percentile(latencies, 0.99),
            "cpu_ms_per_call": cpu * 1000 / iterations,
            "n": iterations,
        }
    print(json.dumps(results))


if __name__ == "__main__":
    main()
