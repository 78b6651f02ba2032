"""Peak memory bandwidth of chips people run MLX on: the roofline's denominator.

Figures are the vendors' published peak (theoretical) bandwidth in GB/s (10^9 bytes/s). Sources are
the product pages and press releases named per family. Where a chip name covers variants with
different memory buses (M3 Max, M4 Max), the CPU core count picks the variant. A chip not listed
gets no table figure: the measured copy test (roofline.measure_bandwidth) is then the only one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Chip:
    name: str
    bandwidth_gbs: float
    source: str


# (pattern matched case-insensitively against the device name, name, GB/s, source). First match wins,
# so the more specific names come first.
_APPLE: list[tuple[str, str, float, str]] = [
    # Apple newsroom, "Apple unleashes M1" (2020-11) and M1 Pro/Max (2021-10), M1 Ultra (2022-03).
    (r"\bM1 Ultra\b", "Apple M1 Ultra", 800, "apple.com/newsroom 2022-03 M1 Ultra"),
    (r"\bM1 Max\b", "Apple M1 Max", 400, "apple.com/newsroom 2021-10 M1 Pro and M1 Max"),
    (r"\bM1 Pro\b", "Apple M1 Pro", 200, "apple.com/newsroom 2021-10 M1 Pro and M1 Max"),
    (r"\bM1\b", "Apple M1", 68.25, "apple.com MacBook Air (M1) tech specs: LPDDR4X-4266, 128-bit"),
    # Apple newsroom M2 (2022-06), M2 Pro/Max (2023-01), M2 Ultra (2023-06).
    (r"\bM2 Ultra\b", "Apple M2 Ultra", 800, "apple.com/newsroom 2023-06 M2 Ultra"),
    (r"\bM2 Max\b", "Apple M2 Max", 400, "apple.com/newsroom 2023-01 M2 Pro and M2 Max"),
    (r"\bM2 Pro\b", "Apple M2 Pro", 200, "apple.com/newsroom 2023-01 M2 Pro and M2 Max"),
    (r"\bM2\b", "Apple M2", 100, "apple.com/newsroom 2022-06 M2"),
    # Apple newsroom M3 family (2023-10), M3 Ultra (2025-03); MacBook Pro (M3 Max) tech specs list 300
    # GB/s for the 14-core CPU and 400 GB/s for the 16-core CPU variant.
    (r"\bM3 Ultra\b", "Apple M3 Ultra", 819, "apple.com/newsroom 2025-03 Mac Studio M3 Ultra"),
    (r"\bM3 Max\b#14", "Apple M3 Max (14-core CPU)", 300, "apple.com MacBook Pro (M3) tech specs"),
    (r"\bM3 Max\b", "Apple M3 Max (16-core CPU)", 400, "apple.com MacBook Pro (M3) tech specs"),
    (r"\bM3 Pro\b", "Apple M3 Pro", 150, "apple.com/newsroom 2023-10 M3 family"),
    (r"\bM3\b", "Apple M3", 100, "apple.com/newsroom 2023-10 M3 family"),
    # Apple newsroom M4 (2024-05), M4 Pro/Max (2024-10); M4 Max 14-core CPU 410 GB/s, 16-core 546 GB/s.
    (r"\bM4 Max\b#14", "Apple M4 Max (14-core CPU)", 410, "apple.com MacBook Pro (M4) tech specs"),
    (r"\bM4 Max\b", "Apple M4 Max (16-core CPU)", 546, "apple.com/newsroom 2024-10 M4 Pro and M4 Max"),
    (r"\bM4 Pro\b", "Apple M4 Pro", 273, "apple.com/newsroom 2024-10 M4 Pro and M4 Max"),
    (r"\bM4\b", "Apple M4", 120, "apple.com/newsroom 2024-05 M4"),
    # Apple newsroom 2026-03-03 (M5 Pro and M5 Max, as reported by macrumors.com the same day): M5 Pro up
    # to 307 GB/s, M5 Max up to 614 GB/s ("up to": a binned variant may have less; the copy test shows).
    # No M5 Ultra figure in our sources: it gets no table entry rather than a guess.
    (r"\bM5 Ultra\b", "", 0, "not in table"),
    (r"\bM5 Max\b", "Apple M5 Max", 614, "apple.com/newsroom 2026-03 M5 Pro and M5 Max (up to)"),
    (r"\bM5 Pro\b", "Apple M5 Pro", 307, "apple.com/newsroom 2026-03 M5 Pro and M5 Max (up to)"),
    # Apple newsroom 2025-10 "Apple unleashes M5": 153 GB/s unified memory bandwidth.
    (r"\bM5\b", "Apple M5", 153, "apple.com/newsroom 2025-10 M5"),
]

_NVIDIA: list[tuple[str, str, float, str]] = [
    # nvidia.com H200 product page: 141 GB HBM3e, 4.8 TB/s.
    (r"\bGH200\b", "NVIDIA GH200 (96 GB HBM3)", 4000, "nvidia.com GH200 datasheet"),
    (r"\bH200\b", "NVIDIA H200", 4800, "nvidia.com/data-center/h200"),
    # nvidia.com H100 datasheet: SXM 3.35 TB/s, PCIe 2 TB/s, NVL 3.9 TB/s. The CUDA name of the SXM
    # part is "NVIDIA H100 80GB HBM3".
    (r"\bH100 NVL\b", "NVIDIA H100 NVL", 3900, "nvidia.com H100 datasheet"),
    (r"\bH100 PCIe\b", "NVIDIA H100 PCIe", 2000, "nvidia.com H100 datasheet"),
    (r"\bH100\b", "NVIDIA H100 SXM", 3350, "nvidia.com H100 datasheet (SXM5, HBM3)"),
    # nvidia.com B200 / DGX B200: 8 TB/s per GPU.
    (r"\bB200\b", "NVIDIA B200", 8000, "nvidia.com DGX B200 datasheet"),
    # nvidia.com A100 datasheet: 40GB PCIe 1,555 GB/s; 80GB PCIe 1,935 GB/s; 80GB SXM 2,039 GB/s.
    (r"\bA100\b.*\bPCIe\b.*80|\bA100 80GB PCIe\b", "NVIDIA A100 80GB PCIe", 1935, "nvidia.com A100 datasheet"),
    (r"\bA100\b.*80", "NVIDIA A100 80GB SXM", 2039, "nvidia.com A100 datasheet"),
    (r"\bA100\b", "NVIDIA A100 40GB", 1555, "nvidia.com A100 datasheet"),
    # nvidia.com L40S / L40 / L4 datasheets.
    (r"\bL40S\b", "NVIDIA L40S", 864, "nvidia.com L40S datasheet"),
    (r"\bL40\b", "NVIDIA L40", 864, "nvidia.com L40 datasheet"),
    (r"\bL4\b", "NVIDIA L4", 300, "nvidia.com L4 datasheet"),
    (r"\bA10G\b", "NVIDIA A10G", 600, "aws.amazon.com/ec2/instance-types/g5"),
    (r"\bA10\b", "NVIDIA A10", 600, "nvidia.com A10 datasheet"),
    (r"\bRTX 6000 Ada\b", "NVIDIA RTX 6000 Ada", 960, "nvidia.com RTX 6000 Ada datasheet"),
    (r"\bRTX A6000\b", "NVIDIA RTX A6000", 768, "nvidia.com RTX A6000 datasheet"),
    # nvidia.com GeForce specs pages: 5090 1,792 GB/s (GDDR7 512-bit 28 Gbps), 4090 1,008 GB/s,
    # 4080 716.8 GB/s, 3090 936 GB/s, 5080 960 GB/s.
    (r"\bRTX 5090\b", "NVIDIA GeForce RTX 5090", 1792, "nvidia.com GeForce RTX 5090 specs"),
    (r"\bRTX 5080\b", "NVIDIA GeForce RTX 5080", 960, "nvidia.com GeForce RTX 5080 specs"),
    (r"\bRTX 4090\b", "NVIDIA GeForce RTX 4090", 1008, "nvidia.com GeForce RTX 4090 specs"),
    (r"\bRTX 4080\b", "NVIDIA GeForce RTX 4080", 716.8, "nvidia.com GeForce RTX 4080 specs"),
    (r"\bRTX 3090\b", "NVIDIA GeForce RTX 3090", 936, "nvidia.com GeForce RTX 3090 specs"),
    (r"\bV100\b", "NVIDIA V100", 900, "nvidia.com V100 datasheet (SXM2/PCIe 32GB)"),
    (r"\bT4\b", "NVIDIA T4", 320, "nvidia.com T4 datasheet"),
]

TABLE = _APPLE + _NVIDIA


def lookup(device_name: str, cpu_cores: int | None = None) -> Chip | None:
    """The table entry for a device name ("Apple M4 Max", "NVIDIA H100 80GB HBM3"), or None.

    `cpu_cores` picks the variant where one name covers two memory buses (M3 Max, M4 Max: 14 cores)."""
    if not device_name:
        return None
    for pattern, name, gbs, source in TABLE:
        regex, _, variant = pattern.partition("#")
        if variant and cpu_cores != int(variant):
            continue
        if re.search(regex, device_name, re.IGNORECASE):
            return Chip(name, float(gbs), source) if gbs else None
    return None
