"""Prometheus metrics. BentoML runs workers with PROMETHEUS_MULTIPROC_DIR set; bedside's own
/metrics route aggregates these across processes (BentoML's per-path metrics are off: they
label by the raw URL path). Labels carry only allow-listed task names, route templates,
outcomes and versions: never text or identifiers."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# ~1 ms to 5 s: a compact encoder answers in milliseconds, a full queue in seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
TOKEN_BUCKETS = (16, 64, 256, 512, 1024, 2048, 4096, 8192, 16384)

REQUEST_SECONDS = Histogram(
    "bedside_request_duration_seconds",
    "Predict request latency by the version that answered",
    ["task", "endpoint", "version"],
    buckets=LATENCY_BUCKETS,
)
QUEUE_SECONDS = Histogram(
    "bedside_queue_wait_seconds", "Time a request waited for its batch", ["task"], buckets=LATENCY_BUCKETS
)
TOKENIZE_SECONDS = Histogram(
    "bedside_tokenize_duration_seconds", "Tokenisation time per request", ["task"], buckets=LATENCY_BUCKETS
)
FORWARD_SECONDS = Histogram(
    "bedside_forward_duration_seconds", "Encoder + heads forward time per batch", buckets=LATENCY_BUCKETS
)
REQUESTS = Counter("bedside_requests_total", "Predict requests by task and outcome", ["task", "outcome"])
BATCH_ROWS = Histogram("bedside_batch_rows", "Rows per encoder forward", buckets=SIZE_BUCKETS)
BATCH_TOKENS = Histogram("bedside_batch_tokens", "Real (unpadded) tokens per encoder forward", buckets=TOKEN_BUCKETS)
BATCH_TASKS = Histogram("bedside_batch_adapters", "Distinct adapters per encoder forward", buckets=SIZE_BUCKETS)
BATCH_TASK_ROWS = Histogram(
    "bedside_batch_task_rows", "Rows of one task in an encoder forward", ["task"], buckets=SIZE_BUCKETS
)
QUEUE_ROWS = Gauge("bedside_queue_rows", "Rows waiting for the encoder", multiprocess_mode="livesum")
INFLIGHT = Gauge("bedside_inflight_requests", "Predict requests in progress", multiprocess_mode="livesum")
ADAPTER_LOADS = Counter("bedside_adapter_loads_total", "Adapter version loads", ["task", "outcome"])
SWAPS = Counter("bedside_adapter_swaps_total", "Active adapter switches", ["task", "outcome"])
SWAP_SECONDS = Histogram(
    "bedside_adapter_swap_duration_seconds", "Load + switch time of a new version", buckets=LATENCY_BUCKETS
)
QUANTISED_CHECK_FLIPS = Counter(
    "bedside_quantised_check_flips_total",
    "Activation checks where the quantised served model answered a smoke example differently "
    "and the fp32 reference check passed",
)
RESIDENT = Gauge("bedside_resident_adapters", "Adapter versions resident in memory", multiprocess_mode="livemax")
ACTIVE = Gauge(
    "bedside_active_adapter_info",
    "1 for the version serving each task",
    ["task", "version"],
    multiprocess_mode="livemax",
)
TASK_READY = Gauge("bedside_task_ready", "1 when a task can answer", ["task"], multiprocess_mode="livemax")
DEVICE_MEMORY = Gauge("bedside_device_memory_bytes", "GPU memory allocated by the model", multiprocess_mode="livemax")
ADMIN_ACTIONS = Counter(
    "bedside_admin_actions_total", "Admin API actions by outcome (ok, refused, denied, failed)", ["action", "outcome"]
)
HTTP_REQUESTS = Counter(
    "bedside_http_requests_total", "HTTP requests by route template, method and status", ["route", "method", "status"]
)
HTTP_SECONDS = Histogram(
    "bedside_http_request_duration_seconds", "HTTP request time by route template", ["route"], buckets=LATENCY_BUCKETS
)
